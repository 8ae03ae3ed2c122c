/**
 * Per-worker load as the router books it (Dynamo's "slot manager", dynamo-facts §1.4):
 * prompt tokens still to prefill and KV blocks in use by active requests. A request is
 * added when routed, its prefill is released at its first token, and everything is freed
 * when it ends; bookings older than `maxAgeMs` are force-freed so a lost "end" cannot leak.
 * Pure: time comes in as `nowMs`.
 */
export interface BookingInput {
  readonly worker: number;
  /** Prompt tokens the worker must compute: max(0, isl − overlap·block size). */
  readonly prefillTokens: number;
  /** Sequence hashes of the request's full blocks (its KV footprint), possibly empty. */
  readonly blockHashes: readonly bigint[];
}

interface Booking {
  readonly worker: number;
  readonly prefillTokens: number;
  inPrefill: boolean;
  readonly blockHashes: readonly bigint[];
  readonly addedAtMs: number;
}

interface WorkerLoadState {
  prefillTokens: number;
  /** seq hash → how many active requests reference it. */
  readonly blocks: Map<bigint, number>;
  requests: number;
}

export class ActiveSequences {
  readonly #bookings = new Map<string, Booking>();
  readonly #workers = new Map<number, WorkerLoadState>();
  readonly #maxAgeMs: number;
  readonly #maxBookings: number;
  #lastSweepMs = -Infinity;

  constructor(options: { maxAgeMs?: number; maxBookings?: number } = {}) {
    this.#maxAgeMs = options.maxAgeMs ?? 300_000;
    this.#maxBookings = options.maxBookings ?? 1_000_000;
  }

  get bookings(): number {
    return this.#bookings.size;
  }

  /** Books a routed request. A request id already booked is freed first. */
  add(requestId: string, input: BookingInput, nowMs: number): void {
    this.free(requestId);
    this.#sweep(nowMs);
    if (this.#bookings.size >= this.#maxBookings) this.#evictOldest();
    const w = this.#worker(input.worker);
    w.prefillTokens += input.prefillTokens;
    w.requests++;
    for (const h of input.blockHashes) w.blocks.set(h, (w.blocks.get(h) ?? 0) + 1);
    this.#bookings.set(requestId, {
      worker: input.worker,
      prefillTokens: input.prefillTokens,
      inPrefill: true,
      blockHashes: input.blockHashes,
      addedAtMs: nowMs,
    });
  }

  /** The request's first token arrived: its prompt is computed. */
  markPrefillCompleted(requestId: string): void {
    const b = this.#bookings.get(requestId);
    if (b === undefined || !b.inPrefill) return;
    b.inPrefill = false;
    const w = this.#workers.get(b.worker);
    if (w !== undefined) w.prefillTokens -= b.prefillTokens;
  }

  /** The request ended (finished, failed or cancelled). Unknown ids are ignored. */
  free(requestId: string): void {
    const b = this.#bookings.get(requestId);
    if (b === undefined) return;
    this.#bookings.delete(requestId);
    const w = this.#workers.get(b.worker);
    if (w === undefined) return;
    if (b.inPrefill) w.prefillTokens -= b.prefillTokens;
    w.requests--;
    for (const h of b.blockHashes) {
      const n = (w.blocks.get(h) ?? 1) - 1;
      if (n <= 0) w.blocks.delete(h);
      else w.blocks.set(h, n);
    }
  }

  /** Prompt tokens booked on `worker` and not yet prefilled. */
  activePrefillTokens(worker: number): number {
    return this.#workers.get(worker)?.prefillTokens ?? 0;
  }

  /** Distinct KV blocks in use by the worker's active requests. */
  activeBlocks(worker: number): number {
    return this.#workers.get(worker)?.blocks.size ?? 0;
  }

  activeRequests(worker: number): number {
    return this.#workers.get(worker)?.requests ?? 0;
  }

  /** How many leading blocks of `blockHashes` the worker's active requests already hold. */
  activeDepth(worker: number, blockHashes: readonly bigint[]): number {
    const blocks = this.#workers.get(worker)?.blocks;
    if (blocks === undefined) return 0;
    let depth = 0;
    while (depth < blockHashes.length && blocks.has(blockHashes[depth]!)) depth++;
    return depth;
  }

  /** Forgets a worker and every booking on it. */
  removeWorker(worker: number): void {
    for (const [id, b] of this.#bookings) if (b.worker === worker) this.#bookings.delete(id);
    this.#workers.delete(worker);
  }

  /** Force-frees bookings older than the maximum age. Checked at most every 30 s. */
  #sweep(nowMs: number): void {
    if (nowMs - this.#lastSweepMs < 30_000) return;
    this.#lastSweepMs = nowMs;
    for (const [id, b] of this.#bookings) {
      if (nowMs - b.addedAtMs > this.#maxAgeMs) this.free(id);
    }
  }

  #evictOldest(): void {
    const oldest = this.#bookings.keys().next().value;
    if (oldest !== undefined) this.free(oldest);
  }

  #worker(worker: number): WorkerLoadState {
    let w = this.#workers.get(worker);
    if (w === undefined) {
      w = { prefillTokens: 0, blocks: new Map(), requests: 0 };
      this.#workers.set(worker, w);
    }
    return w;
  }
}
