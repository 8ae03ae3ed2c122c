import { DynamoError } from "../errors/mod.ts";
import { OverlapBuffer } from "../kv_index/mod.ts";
import type { WorkerLoad } from "../protocol/mod.ts";
import { BlockHasher } from "../tokens/mod.ts";
import { type Clock, type Rng, SeededRng } from "../util/mod.ts";
import { type CandidateCost, candidateCost, pickWorker } from "./kv_cost.ts";
import type { KvRoutingState } from "./kv_routing_state.ts";
import type { RouteDecision, RouteRequest, WorkerCandidate, WorkerSelector } from "./selector.ts";

/** Why a worker was chosen: what `POST /v1/route` answers. */
export interface KvExplanation {
  readonly block_size: number;
  readonly isl_tokens: number;
  readonly query_blocks: number;
  readonly overlap_score_weight: number;
  readonly temperature: number;
  readonly candidates: readonly (CandidateCost & { readonly busy: boolean })[];
}

/** A request's hashes, computed once at selection and reused when it is booked. */
interface Prepared {
  readonly localHashes: bigint[];
  readonly trackedHashes: bigint[];
  readonly overlap: Map<number, number>;
}

interface Parked {
  readonly request: RouteRequest;
  readonly candidates: readonly WorkerCandidate[];
  readonly resolve: (d: RouteDecision) => void;
  readonly reject: (e: unknown) => void;
  readonly cleanup: () => void;
}

/** Bound on requests selected but not yet booked or finished (their hashes are kept). */
const MAX_PREPARED = 65_536;

/**
 * The KV-aware policy for one model: scores every candidate by how much of the prompt it
 * has cached and how loaded it is (dynamo-facts §1.5), books the chosen worker's load, and
 * sheds or parks requests when every worker is over its thresholds (§1.6, §1.7).
 */
export class KvSelector implements WorkerSelector {
  readonly mode = "kv";
  readonly #state: KvRoutingState;
  readonly #blockSize: number;
  readonly #clock: Clock;
  readonly #seed: number;
  readonly #hasher = new BlockHasher();
  readonly #loadOf: (instanceId: number) => WorkerLoad | undefined;
  readonly #stopwatch: () => number;
  readonly #prepared = new Map<string, Prepared>();
  readonly #queue: Parked[] = [];
  readonly #rng: Rng;
  readonly #overlap = new OverlapBuffer();

  constructor(
    state: KvRoutingState,
    options: {
      blockSizeTokens: number;
      clock: Clock;
      loadOf?: (instanceId: number) => WorkerLoad | undefined;
      /** Monotonic milliseconds for overhead metrics; a simulator passes a constant. */
      stopwatch?: () => number;
    },
  ) {
    this.#state = state;
    this.#blockSize = options.blockSizeTokens;
    this.#clock = options.clock;
    this.#seed = state.config.seed;
    this.#rng = new SeededRng(state.config.seed);
    this.#loadOf = options.loadOf ?? (() => undefined);
    this.#stopwatch = options.stopwatch ?? (() => performance.now());
    state.onRelease(() => this.#drainQueue());
  }

  /** Scores the candidates without booking anything. */
  explain(
    request: RouteRequest,
    candidates: readonly WorkerCandidate[],
  ): { instanceId: number; explanation: KvExplanation } {
    const prepared = this.#prepare(request, candidates);
    return this.#decide(request, candidates, prepared);
  }

  select(
    request: RouteRequest,
    candidates: readonly WorkerCandidate[],
    signal?: AbortSignal,
  ): RouteDecision | Promise<RouteDecision> {
    const started = this.#stopwatch();
    const prepared = this.#prepare(request, candidates);
    const { instanceId, explanation } = this.#decide(request, candidates, prepared);
    const busy = explanation.candidates.filter((c) => c.busy).length;
    if (busy === candidates.length) {
      throw new DynamoError(
        "overloaded",
        "all_workers_busy",
        "All workers are busy; retry shortly",
        {
          retryAfterS: 1,
        },
      );
    }
    if (this.#mustPark(candidates)) return this.#park(request, candidates, signal);
    this.#remember(request.requestId, prepared);
    const chosen = explanation.candidates.find((c) => c.worker_id === instanceId)!;
    const m = this.#state.metrics;
    const labels = { router_id: m.routerId };
    m.kvHitRate.observe(
      labels,
      request.tokenIds.length === 0
        ? 0
        : Math.min(1, chosen.overlap_blocks * this.#blockSize / request.tokenIds.length),
    );
    m.totalMs.observe(labels, this.#stopwatch() - started);
    return { instanceId, explanation };
  }

  onRouted(request: RouteRequest, instanceId: number): void {
    const prepared = this.#prepared.get(request.requestId) ?? this.#prepare(request, []);
    this.#prepared.delete(request.requestId);
    const key = this.#state.keyOf(instanceId);
    const overlap = prepared.overlap.get(instanceId) ??
      this.#state.index.findMatches(prepared.localHashes, this.#overlap).depthOf(key);
    const now = this.#clock.nowMs();
    this.#state.sequences.add(request.requestId, {
      worker: key,
      prefillTokens: Math.max(0, request.tokenIds.length - overlap * this.#blockSize),
      blockHashes: this.#state.config.trackActiveBlocks ? prepared.trackedHashes : [],
    }, now);
    const pruner = this.#state.pruner;
    if (pruner !== undefined) {
      pruner.prune(now);
      pruner.recordRouting(key, prepared.localHashes, this.#sequenceHashes(prepared), now);
    }
  }

  onFirstToken(requestId: string): void {
    this.#state.sequences.markPrefillCompleted(requestId);
    this.#state.notifyRelease();
  }

  onFinished(requestId: string): void {
    this.#prepared.delete(requestId);
    this.#state.sequences.free(requestId);
    this.#state.notifyRelease();
  }

  onWorkerRemoved(instanceId: number): void {
    this.#state.removeWorker(instanceId);
  }

  #prepare(request: RouteRequest, candidates: readonly WorkerCandidate[]): Prepared {
    const m = this.#state.metrics;
    const labels = { router_id: m.routerId };
    let t = this.#stopwatch();
    const localHashes = this.#hasher.localHashes(request.tokenIds, this.#blockSize);
    const trackedHashes = this.#state.config.assumeKvReuse
      ? this.#hasher.sequenceHashes(localHashes)
      : localHashes.map(() => BigInt(this.#rng.nextU32()) << 32n | BigInt(this.#rng.nextU32()));
    const now = this.#stopwatch();
    m.blockHashingMs.observe(labels, now - t);
    t = now;
    const overlap = new Map<number, number>();
    if (candidates.length > 0 && localHashes.length > 0) {
      // Per-worker depths land in a reused buffer: no allocation per request.
      const out = this.#state.index.findMatches(localHashes, this.#overlap);
      for (let i = 0; i < out.count; i++) {
        const instanceId = this.#state.instanceOf(out.workers[i]!);
        if (instanceId !== undefined) overlap.set(instanceId, out.depths[i]!);
      }
    }
    m.findMatchesMs.observe(labels, this.#stopwatch() - t);
    return { localHashes, trackedHashes, overlap };
  }

  #decide(
    request: RouteRequest,
    candidates: readonly WorkerCandidate[],
    prepared: Prepared,
  ): { instanceId: number; explanation: KvExplanation } {
    const t = this.#stopwatch();
    const cfg = this.#state.config;
    const weight = request.overrides?.overlapScoreWeight ?? cfg.overlapScoreWeight;
    const temperature = request.overrides?.temperature ?? cfg.temperature;
    const params = {
      islTokens: request.tokenIds.length,
      queryBlocks: prepared.localHashes.length,
      blockSizeTokens: this.#blockSize,
      overlapScoreWeight: weight,
      trackPrefillTokens: cfg.trackPrefillTokens,
    };
    const seqs = this.#state.sequences;
    const costs = candidates.map((c) => {
      const key = this.#state.keyOf(c.instanceId);
      const cost = candidateCost({
        instanceId: c.instanceId,
        overlapBlocks: prepared.overlap.get(c.instanceId) ?? 0,
        treeSize: this.#state.index.workerTreeSize(key),
        activePrefillTokens: seqs.activePrefillTokens(key),
        activeBlocks: cfg.trackActiveBlocks ? seqs.activeBlocks(key) : 0,
        activeDepth: cfg.trackActiveBlocks ? seqs.activeDepth(key, prepared.trackedHashes) : 0,
      }, params);
      return { ...cost, busy: this.#isBusy(c) };
    });
    const eligible = costs.filter((c) => !c.busy);
    // Ties and sampling draw from a stream seeded by the router seed and the request's first
    // block (its tokens, for a prompt shorter than a block), so explaining a request and
    // then routing it choose the same worker, and different short prompts spread.
    const first = prepared.localHashes[0];
    const salt = first !== undefined ? Number(first & 0xffff_ffffn) : tokensSalt(request.tokenIds);
    const rng = new SeededRng(this.#seed ^ salt);
    const instanceId = pickWorker(eligible.length > 0 ? eligible : costs, temperature, rng);
    const m = this.#state.metrics;
    m.schedulingMs.observe({ router_id: m.routerId }, this.#stopwatch() - t);
    return {
      instanceId,
      explanation: {
        block_size: this.#blockSize,
        isl_tokens: request.tokenIds.length,
        query_blocks: prepared.localHashes.length,
        overlap_score_weight: weight,
        temperature,
        candidates: costs,
      },
    };
  }

  /** Busy (§1.7): too much prefill booked, or the KV cache (reported or booked) is full. */
  #isBusy(c: WorkerCandidate): boolean {
    const cfg = this.#state.config;
    const key = this.#state.keyOf(c.instanceId);
    const prefill = this.#state.sequences.activePrefillTokens(key);
    const rc = c.card.runtime_config;
    if (prefill > cfg.activePrefillTokensThreshold) return true;
    if (prefill > cfg.activePrefillTokensThresholdFrac * rc.max_num_batched_tokens) return true;
    const reported = this.#loadOf(c.instanceId)?.kv_used_blocks ?? 0;
    const used = Math.max(reported, this.#state.sequences.activeBlocks(key));
    return rc.total_kv_blocks > 0 && used > cfg.activeDecodeBlocksThreshold * rc.total_kv_blocks;
  }

  /** Park (§1.6) when every candidate has more than threshold × its batch budget booked. */
  #mustPark(candidates: readonly WorkerCandidate[]): boolean {
    const threshold = this.#state.config.queueThreshold;
    if (threshold === null) return false;
    return candidates.every((c) =>
      this.#state.sequences.activePrefillTokens(this.#state.keyOf(c.instanceId)) >
        threshold * c.card.runtime_config.max_num_batched_tokens
    );
  }

  #park(
    request: RouteRequest,
    candidates: readonly WorkerCandidate[],
    signal: AbortSignal | undefined,
  ): Promise<RouteDecision> {
    if (this.#queue.length >= this.#state.config.maxQueuedRequests) {
      throw new DynamoError(
        "overloaded",
        "router_queue_full",
        "The router's queue is full; retry shortly",
        {
          retryAfterS: 1,
        },
      );
    }
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        const i = this.#queue.indexOf(parked);
        if (i !== -1) this.#queue.splice(i, 1);
        this.#updateQueueGauge();
        reject(signal!.reason);
      };
      const parked: Parked = {
        request,
        candidates,
        resolve,
        reject,
        cleanup: () => signal?.removeEventListener("abort", onAbort),
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#queue.push(parked);
      this.#updateQueueGauge();
    });
  }

  /** Admits parked requests in arrival order while the head may go (head-of-line, as upstream). */
  #drainQueue(): void {
    while (this.#queue.length > 0) {
      const head = this.#queue[0]!;
      if (this.#mustPark(head.candidates)) break;
      this.#queue.shift();
      head.cleanup();
      try {
        const prepared = this.#prepare(head.request, head.candidates);
        const decision = this.#decide(head.request, head.candidates, prepared);
        this.#remember(head.request.requestId, prepared);
        head.resolve(decision);
      } catch (err) {
        head.reject(err);
      }
    }
    this.#updateQueueGauge();
  }

  #updateQueueGauge(): void {
    this.#state.metrics.queuePending.set({ worker_type: "decode" }, this.#queue.length);
  }

  #remember(requestId: string, prepared: Prepared): void {
    if (this.#prepared.size >= MAX_PREPARED) {
      const oldest = this.#prepared.keys().next().value;
      if (oldest !== undefined) this.#prepared.delete(oldest);
    }
    this.#prepared.set(requestId, prepared);
  }

  #sequenceHashes(prepared: Prepared): bigint[] {
    return this.#state.config.assumeKvReuse
      ? prepared.trackedHashes
      : this.#hasher.sequenceHashes(prepared.localHashes);
  }
}

/** FNV-1a over token ids: a salt for prompts too short to have a block hash. */
function tokensSalt(tokens: readonly number[]): number {
  let h = 0x811c9dc5;
  for (const t of tokens) {
    h ^= t;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
