import type { ApplyStatus, KvIndex, WorkerKey } from "./kv_index.ts";
import { U64Table } from "./_u64_table.ts";

/** Options for `ApproxPruner` (Dynamo's `PruneConfig`). */
export interface ApproxPrunerOptions {
  /** How long a routed block is assumed cached (`--router-ttl-secs`, 120 s). */
  readonly ttlMs?: number;
  /** Tracked (worker, block) entries above which size pruning starts (`--router-max-tree-size`, 2^20). */
  readonly maxTreeSizeBlocks?: number;
  /** Size pruning stops at this fraction of the maximum (`--router-prune-target-ratio`, 0.8). */
  readonly pruneTargetRatio?: number;
}

/** What one `prune()` call removed, in (worker, block) entries. */
export interface PruneResult {
  readonly expiredBlocks: number;
  readonly prunedBlocks: number;
}

export const DEFAULT_APPROX_TTL_MS = 120_000;
export const DEFAULT_APPROX_MAX_TREE_SIZE_BLOCKS = 2 ** 20;
export const DEFAULT_PRUNE_TARGET_RATIO = 0.8;

const NONE = -1;
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
const LO = LITTLE_ENDIAN ? 0 : 1;
const HI = LITTLE_ENDIAN ? 1 : 0;
/** The heap is rebuilt without stale items when it exceeds this many per live entry (plus slack). */
const HEAP_STALE_FACTOR = 2;
const HEAP_SLACK = 1024;

/**
 * Approximate mode (`--no-router-kv-events`, dynamo-facts §1.3): with no KV events, the
 * router records its own routing decisions as stored blocks and forgets them after a TTL or
 * when the index grows too large. Each (worker, block) entry has an expiry `now + ttl`,
 * refreshed when routed again. `prune(nowMs)` removes expired entries and, above
 * `maxTreeSizeBlocks` entries, the soonest-expiring ones (deeper blocks first on ties)
 * until `pruneTargetRatio` of the maximum is left, applying Removed events to the index.
 *
 * Size is counted in (worker, block) entries, like upstream's `current_size()` (the sum of
 * the lookup sizes), so it bounds the index's distinct blocks too. Pure: time is `nowMs`.
 */
export class ApproxPruner {
  readonly #index: KvIndex;
  readonly #ttlMs: number;
  readonly #maxEntries: number;
  readonly #targetEntries: number;
  readonly #tables = new Map<WorkerKey, U64Table>();

  // Entries: one per tracked (worker, block), struct-of-arrays with a free list.
  #eExpiry = new Float64Array(64);
  #eDepth = new Int32Array(64);
  #eWorker = new Int32Array(64).fill(NONE);
  #eHi = new Uint32Array(64);
  #eLo = new Uint32Array(64);
  #eGen = new Int32Array(64);
  #eBump = 0;
  #eFree: number[] = [];
  #entries = 0;

  // A binary min-heap of (expiry, -depth, -hash, -worker) items; stale items are skipped.
  #hExpiry = new Float64Array(64);
  #hDepth = new Int32Array(64);
  #hHi = new Uint32Array(64);
  #hLo = new Uint32Array(64);
  #hWorker = new Int32Array(64);
  #hEntry = new Int32Array(64);
  #hGen = new Int32Array(64);
  #heapSize = 0;

  readonly #s64 = new BigUint64Array(1);
  readonly #s32 = new Uint32Array(this.#s64.buffer);

  constructor(index: KvIndex, options: ApproxPrunerOptions = {}) {
    const ttlMs = options.ttlMs ?? DEFAULT_APPROX_TTL_MS;
    const max = options.maxTreeSizeBlocks ?? DEFAULT_APPROX_MAX_TREE_SIZE_BLOCKS;
    const ratio = options.pruneTargetRatio ?? DEFAULT_PRUNE_TARGET_RATIO;
    if (!Number.isFinite(ttlMs) || ttlMs <= 0) {
      throw new RangeError(`Cannot create ApproxPruner: ttlMs must be > 0, got ${ttlMs}`);
    }
    if (!Number.isInteger(max) || max < 1) {
      throw new RangeError(
        `Cannot create ApproxPruner: maxTreeSizeBlocks must be a positive integer, got ${max}`,
      );
    }
    if (!(ratio > 0 && ratio <= 1)) {
      throw new RangeError(
        `Cannot create ApproxPruner: pruneTargetRatio must be in (0, 1], got ${ratio}`,
      );
    }
    this.#index = index;
    this.#ttlMs = ttlMs;
    this.#maxEntries = max;
    this.#targetEntries = Math.floor(max * ratio);
  }

  /** Tracked (worker, block) entries. */
  get trackedBlocks(): number {
    return this.#entries;
  }

  /**
   * Records that a request was routed to `worker`: applies a Stored event (parent none;
   * block hash = sequence hash, tokens hash = local hash) and sets each block's expiry to
   * `nowMs + ttl`. Entries are not recorded when the index rejects the store as full. Call
   * `prune(nowMs)` afterwards; past twice the maximum this prunes by size itself.
   */
  recordRouting(
    worker: WorkerKey,
    localHashes: BigUint64Array | readonly bigint[],
    seqHashes: BigUint64Array | readonly bigint[],
    nowMs: number,
  ): ApplyStatus {
    if (!Number.isFinite(nowMs)) {
      throw new RangeError(`Cannot record routing: nowMs must be finite, got ${nowMs}`);
    }
    if (localHashes.length !== seqHashes.length) {
      throw new RangeError(
        `Cannot record routing: ${localHashes.length} local hashes but ${seqHashes.length} sequence hashes`,
      );
    }
    const status = this.#index.applyStoredHashes(worker, null, {
      blockHashes: seqHashes,
      tokensHashes: localHashes,
    });
    if (status === "tree_full") return status;
    let table = this.#tables.get(worker);
    if (table === undefined) {
      table = new U64Table();
      this.#tables.set(worker, table);
    }
    const expiry = nowMs + this.#ttlMs;
    for (let depth = 0; depth < seqHashes.length; depth++) {
      this.#s64[0] = seqHashes[depth]!;
      const hi = this.#s32[HI]!;
      const lo = this.#s32[LO]!;
      let e = table.get(hi, lo);
      if (e === NONE) {
        e = this.#allocEntry(worker, hi, lo);
        table.set(hi, lo, e);
      }
      this.#eExpiry[e] = expiry;
      this.#eDepth[e] = depth;
      this.#push(e);
    }
    if (this.#heapSize > HEAP_STALE_FACTOR * this.#entries + HEAP_SLACK) this.#rebuildHeap();
    if (this.#entries > 2 * this.#maxEntries) this.#pruneBySize(new Map());
    return status;
  }

  /** Removes expired entries, then prunes by size if over the maximum; applies Removed events. */
  prune(nowMs: number): PruneResult {
    const removals = new Map<WorkerKey, bigint[]>();
    let expiredBlocks = 0;
    while (this.#heapSize > 0 && this.#hExpiry[0]! <= nowMs) {
      if (this.#popInto(removals)) expiredBlocks++;
    }
    const prunedBlocks = this.#pruneBySize(removals);
    return { expiredBlocks, prunedBlocks };
  }

  /** The earliest pending expiry, or null when nothing is tracked (for scheduling a timer). */
  nextExpiryMs(): number | null {
    while (this.#heapSize > 0 && !this.#topIsLive()) this.#popTop();
    return this.#heapSize > 0 ? this.#hExpiry[0]! : null;
  }

  /** The worker left: removes it from the index and forgets its entries. */
  removeWorker(worker: WorkerKey): void {
    this.#index.removeWorker(worker);
    const table = this.#tables.get(worker);
    if (table === undefined) return;
    for (const e of table.values()) this.#freeEntry(e);
    this.#tables.delete(worker);
  }

  #pruneBySize(removals: Map<WorkerKey, bigint[]>): number {
    let pruned = 0;
    if (this.#entries > this.#maxEntries) {
      while (this.#entries > this.#targetEntries && this.#heapSize > 0) {
        if (this.#popInto(removals)) pruned++;
      }
    }
    for (const [worker, hashes] of removals) this.#index.applyRemoved(worker, hashes);
    return pruned;
  }

  /** Pops the top item; when it is live, forgets its entry and queues a removal. */
  #popInto(removals: Map<WorkerKey, bigint[]>): boolean {
    const live = this.#topIsLive();
    const e = this.#hEntry[0]!;
    this.#popTop();
    if (!live) return false;
    const worker = this.#eWorker[e]!;
    const hi = this.#eHi[e]!;
    const lo = this.#eLo[e]!;
    this.#tables.get(worker)!.delete(hi, lo);
    this.#freeEntry(e);
    let list = removals.get(worker);
    if (list === undefined) {
      list = [];
      removals.set(worker, list);
    }
    list.push((BigInt(hi) << 32n) | BigInt(lo));
    return true;
  }

  #topIsLive(): boolean {
    const e = this.#hEntry[0]!;
    return this.#eWorker[e] !== NONE && this.#eGen[e] === this.#hGen[0] &&
      this.#eExpiry[e] === this.#hExpiry[0];
  }

  #allocEntry(worker: number, hi: number, lo: number): number {
    let e = this.#eFree.pop();
    if (e === undefined) {
      e = this.#eBump++;
      if (e >= this.#eWorker.length) this.#growEntries();
    }
    this.#eWorker[e] = worker;
    this.#eHi[e] = hi;
    this.#eLo[e] = lo;
    this.#entries++;
    return e;
  }

  #freeEntry(e: number): void {
    this.#eWorker[e] = NONE;
    this.#eGen[e] = this.#eGen[e]! + 1;
    this.#eFree.push(e);
    this.#entries--;
  }

  #growEntries(): void {
    const n = this.#eWorker.length * 2;
    this.#eExpiry = grow(this.#eExpiry, new Float64Array(n));
    this.#eDepth = grow(this.#eDepth, new Int32Array(n));
    this.#eWorker = grow(this.#eWorker, new Int32Array(n).fill(NONE));
    this.#eHi = grow(this.#eHi, new Uint32Array(n));
    this.#eLo = grow(this.#eLo, new Uint32Array(n));
    this.#eGen = grow(this.#eGen, new Int32Array(n));
  }

  // ---- heap -----------------------------------------------------------------------------

  /** Pushes the current state of entry `e` as a heap item. */
  #push(e: number): void {
    if (this.#heapSize === this.#hEntry.length) this.#growHeap();
    const i = this.#heapSize++;
    this.#writeItem(i, e);
    this.#siftUp(i);
  }

  #writeItem(i: number, e: number): void {
    this.#hExpiry[i] = this.#eExpiry[e]!;
    this.#hDepth[i] = this.#eDepth[e]!;
    this.#hHi[i] = this.#eHi[e]!;
    this.#hLo[i] = this.#eLo[e]!;
    this.#hWorker[i] = this.#eWorker[e]!;
    this.#hEntry[i] = e;
    this.#hGen[i] = this.#eGen[e]!;
  }

  #popTop(): void {
    const last = --this.#heapSize;
    if (last > 0) {
      this.#move(last, 0);
      this.#siftDown(0);
    }
  }

  /** Whether item i pops before item j: earlier expiry, then deeper, then larger hash and worker. */
  #before(i: number, j: number): boolean {
    const a = this.#hExpiry[i]!;
    const b = this.#hExpiry[j]!;
    if (a !== b) return a < b;
    if (this.#hDepth[i] !== this.#hDepth[j]) return this.#hDepth[i]! > this.#hDepth[j]!;
    if (this.#hHi[i] !== this.#hHi[j]) return this.#hHi[i]! > this.#hHi[j]!;
    if (this.#hLo[i] !== this.#hLo[j]) return this.#hLo[i]! > this.#hLo[j]!;
    return this.#hWorker[i]! > this.#hWorker[j]!;
  }

  #siftUp(start: number): void {
    let i = start;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.#before(i, parent)) return;
      this.#swap(i, parent);
      i = parent;
    }
  }

  #siftDown(start: number): void {
    let i = start;
    const n = this.#heapSize;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) return;
      const r = l + 1;
      const c = r < n && this.#before(r, l) ? r : l;
      if (!this.#before(c, i)) return;
      this.#swap(i, c);
      i = c;
    }
  }

  #swap(i: number, j: number): void {
    swapIn(this.#hExpiry, i, j);
    swapIn(this.#hDepth, i, j);
    swapIn(this.#hHi, i, j);
    swapIn(this.#hLo, i, j);
    swapIn(this.#hWorker, i, j);
    swapIn(this.#hEntry, i, j);
    swapIn(this.#hGen, i, j);
  }

  #move(from: number, to: number): void {
    this.#hExpiry[to] = this.#hExpiry[from]!;
    this.#hDepth[to] = this.#hDepth[from]!;
    this.#hHi[to] = this.#hHi[from]!;
    this.#hLo[to] = this.#hLo[from]!;
    this.#hWorker[to] = this.#hWorker[from]!;
    this.#hEntry[to] = this.#hEntry[from]!;
    this.#hGen[to] = this.#hGen[from]!;
  }

  #rebuildHeap(): void {
    this.#heapSize = 0;
    for (let e = 0; e < this.#eBump; e++) {
      if (this.#eWorker[e] === NONE) continue;
      this.#writeItem(this.#heapSize++, e);
    }
    for (let i = (this.#heapSize >> 1) - 1; i >= 0; i--) this.#siftDown(i);
  }

  #growHeap(): void {
    const n = this.#hEntry.length * 2;
    this.#hExpiry = grow(this.#hExpiry, new Float64Array(n));
    this.#hDepth = grow(this.#hDepth, new Int32Array(n));
    this.#hHi = grow(this.#hHi, new Uint32Array(n));
    this.#hLo = grow(this.#hLo, new Uint32Array(n));
    this.#hWorker = grow(this.#hWorker, new Int32Array(n));
    this.#hEntry = grow(this.#hEntry, new Int32Array(n));
    this.#hGen = grow(this.#hGen, new Int32Array(n));
  }
}

function grow<T extends Float64Array | Int32Array | Uint32Array>(old: T, bigger: T): T {
  bigger.set(old as never);
  return bigger;
}

function swapIn(a: Float64Array | Int32Array | Uint32Array, i: number, j: number): void {
  const t = a[i]!;
  a[i] = a[j]!;
  a[j] = t;
}
