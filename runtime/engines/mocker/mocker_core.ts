import { DynamoError } from "../../errors/mod.ts";
import type { EngineRequest, KvCacheEvent } from "../../protocol/mod.ts";
import { BlockHasher } from "../../tokens/mod.ts";
import { type Rng, SeededRng } from "../../util/mod.ts";
import type { EngineLoad } from "../engine.ts";
import { type KvBlock, KvManager, PRIVATE_BLOCK } from "./kv_manager.ts";
import {
  type MockerOptions,
  type MockerOptionsInput,
  resolveMockerOptions,
} from "./mocker_options.ts";
import { MockerRequest, type StopRule } from "./mocker_request.ts";
import {
  type MockerVocabulary,
  outputSeed,
  OutputTokenGenerator,
  validateVocabulary,
} from "./output_tokens.ts";
import { type MockerOutput, VllmScheduler } from "./scheduler.ts";
import { passDurationMs, type PerfModel, polynomialPerfModel } from "./timing.ts";

export interface MockerCoreDeps {
  readonly options?: MockerOptionsInput;
  readonly vocabulary: MockerVocabulary;
  /** Seeds outputs of requests without their own seed; defaults to SeededRng(options.seed). */
  readonly rng?: Rng;
  /** Defaults to Dynamo's polynomial model. */
  readonly perfModel?: PerfModel;
  /** The data-parallel rank stamped on KV events. */
  readonly dpRank?: number;
  /**
   * Put each stored block's token ids in KV events (default true; vLLM's wire format needs
   * them). A simulator feeding the router's index directly skips them: it reads only hashes.
   */
  readonly emitTokenIds?: boolean;
}

/** What one pass did, for metrics and the simulator. */
export interface MockerPassStats {
  readonly startMs: number;
  readonly endMs: number;
  /** Unscaled model times. */
  readonly prefillMs: number;
  readonly decodeMs: number;
  readonly scheduledTokens: number;
  /** Requests that computed prompt tokens, and how many prompt tokens they computed. */
  readonly prefillRequests: number;
  readonly prefillTokens: number;
  readonly decodeRequests: number;
  readonly preemptedRequestIds: readonly string[];
  /** Queue sizes after the pass. */
  readonly runningRequests: number;
  readonly waitingRequests: number;
}

export interface MockerStep {
  /** Simulated duration; the outputs become visible at `nowMs + durationMs`. */
  readonly durationMs: number;
  readonly outputs: MockerOutput[];
  readonly kvEvents: KvCacheEvent[];
  readonly pass: MockerPassStats;
}

/**
 * The mocker's pure core: a simulated vLLM engine driven one scheduler pass at a time.
 * It never reads a clock; the live shell and the simulator pass `nowMs` in.
 */
export class MockerCore {
  readonly options: MockerOptions;
  readonly #vocabulary: MockerVocabulary;
  readonly #rng: Rng;
  readonly #perf: PerfModel;
  readonly #kv: KvManager;
  readonly #scheduler: VllmScheduler;
  readonly #hasher = new BlockHasher();

  constructor(deps: MockerCoreDeps) {
    this.options = resolveMockerOptions(deps.options);
    validateVocabulary(deps.vocabulary);
    this.#vocabulary = deps.vocabulary;
    this.#rng = deps.rng ?? new SeededRng(this.options.seed);
    this.#perf = deps.perfModel ?? polynomialPerfModel;
    const o = this.options;
    this.#kv = new KvManager({
      numGpuBlocks: o.numGpuBlocks,
      enablePrefixCaching: o.enablePrefixCaching,
      dpRank: deps.dpRank ?? 0,
      emitTokenIds: deps.emitTokenIds ?? true,
    });
    this.#scheduler = new VllmScheduler(o, this.#kv);
  }

  /** Total preemptions since start. */
  get preemptionsTotal(): number {
    return this.#scheduler.preemptionsTotal;
  }

  /**
   * Queues a request. Throws `invalid_request` for a duplicate id or a request this engine
   * can never serve, and `overloaded` when the waiting queue is full.
   */
  addRequest(request: EngineRequest, nowMs: number): void {
    this.#validate(request);
    const o = this.options;
    const { stop_conditions: stop } = request;
    const promptLen = request.token_ids.length;
    const eos = stop.ignore_eos
      ? null
      : this.#vocabulary.eosTokenIds[0] ?? request.eos_token_ids[0] ?? null;
    const stopIds = new Set(stop.stop_token_ids);
    if (!stop.ignore_eos) { for (const id of request.eos_token_ids) stopIds.add(id); }
    if (eos !== null) stopIds.add(eos);
    const stopRule: StopRule = {
      maxOutputTokens: Math.min(stop.max_tokens, o.contextLengthTokens - promptLen),
      minTokens: stop.min_tokens,
      stopTokenIds: stopIds.size > 0 ? stopIds : null,
    };
    const generator = new OutputTokenGenerator(
      this.#vocabulary,
      outputSeed(request, this.#rng),
      { meanOutputTokens: o.meanOutputTokens, eosTokenId: eos, minTokens: stop.min_tokens },
    );
    const init = {
      id: request.request_id,
      promptTokenIds: request.token_ids,
      stopRule,
      generator,
      arrivalMs: nowMs,
    };
    this.#scheduler.add(new MockerRequest(init, this.#hasher, o.blockSizeTokens));
  }

  /** Cancels a request, freeing its blocks; returns its final ("cancelled") output if it was live. */
  cancel(requestId: string): MockerOutput | undefined {
    return this.#scheduler.cancel(requestId);
  }

  /** Runs one scheduler pass starting at `nowMs`. */
  step(nowMs: number): MockerStep {
    const outputs: MockerOutput[] = [];
    const pass = this.#scheduler.schedule(outputs);
    const n = pass.prefillRequests;
    const prefillMs = n > 0
      ? this.#perf.prefillMs(
        n,
        Math.floor(pass.totalIslTokens / n),
        Math.floor(pass.totalPrefixTokens / n),
      )
      : 0;
    const decodeMs = pass.decodeRequests > 0
      ? this.#perf.decodeMs(this.#kv.activeBlocks, this.#kv.totalBlocks)
      : 0;
    this.#scheduler.emitTokens(outputs);
    const durationMs = passDurationMs(prefillMs, decodeMs, this.options);
    return {
      durationMs,
      outputs,
      kvEvents: this.#kv.drainEvents(),
      pass: {
        startMs: nowMs,
        endMs: nowMs + durationMs,
        prefillMs,
        decodeMs,
        scheduledTokens: pass.scheduledTokens,
        prefillRequests: n,
        prefillTokens: pass.totalIslTokens - pass.totalPrefixTokens,
        decodeRequests: pass.decodeRequests,
        preemptedRequestIds: pass.preemptedRequestIds,
        runningRequests: this.#scheduler.numRunning,
        waitingRequests: this.#scheduler.numWaiting,
      },
    };
  }

  /** KV blocks referenced by running requests (what `load().kv_used_blocks` reports). */
  get kvActiveBlocks(): number {
    return this.#kv.activeBlocks;
  }

  /** True while any request is waiting or running. */
  hasWork(): boolean {
    return this.#scheduler.size > 0;
  }

  load(): EngineLoad {
    const kv = this.#kv;
    return {
      active_decode_blocks: kv.activeBlocks,
      active_prefill_tokens: this.#scheduler.pendingPrefillTokens,
      kv_used_blocks: kv.activeBlocks,
      kv_total_blocks: kv.totalBlocks,
      num_requests_running: this.#scheduler.numRunning,
      num_requests_waiting: this.#scheduler.numWaiting,
    };
  }

  /** Cancels every request and empties the prefix cache (emitting "cleared"). */
  reset(): { outputs: MockerOutput[]; kvEvents: KvCacheEvent[] } {
    const outputs: MockerOutput[] = [];
    for (const id of this.#scheduler.requestIds()) {
      const out = this.#scheduler.cancel(id);
      if (out !== undefined) outputs.push(out);
    }
    this.#kv.clear();
    return { outputs, kvEvents: this.#kv.drainEvents() };
  }

  /** Throws if any bookkeeping is inconsistent (refcounts, capacity, queues); for tests. */
  checkInvariants(): void {
    this.#kv.checkInvariants();
    const refs = new Map<KvBlock, number>();
    let privateBlocks = 0;
    const bs = this.options.blockSizeTokens;
    this.#scheduler.forEachRequest((r) => {
      if (r.blocks.length !== Math.ceil(r.computedTokens / bs) || r.computedTokens > r.length) {
        throw new Error(`Invariant broken: request ${r.id} holds ${r.blocks.length} blocks`);
      }
      if (r.state === "waiting" && r.blocks.length > 0) {
        throw new Error(`Invariant broken: waiting request ${r.id} holds blocks`);
      }
      for (const b of r.blocks) {
        if (b === PRIVATE_BLOCK) privateBlocks++;
        else refs.set(b, (refs.get(b) ?? 0) + 1);
      }
    });
    for (const [block, count] of refs) {
      if (block.refCount !== count) {
        throw new Error(
          `Invariant broken: block ${block.hash} refCount ${block.refCount} != ${count}`,
        );
      }
    }
    if (refs.size + privateBlocks !== this.#kv.activeBlocks) {
      throw new Error(`Invariant broken: ${refs.size + privateBlocks} referenced != active`);
    }
    if (this.#scheduler.numRunning > this.options.maxNumSeqs) {
      throw new Error("Invariant broken: too many running requests");
    }
  }

  #validate(request: EngineRequest): void {
    const o = this.options;
    const id = request.request_id;
    const promptLen = request.token_ids.length;
    const invalid = (reason: string, message: string, param?: string): never => {
      throw new DynamoError("invalid_request", reason, message, { param });
    };
    if (this.#scheduler.has(id)) {
      invalid("duplicate_request_id", `Cannot add request "${id}": a request with this id is live`);
    }
    if (promptLen > o.contextLengthTokens) {
      invalid(
        "context_length_exceeded",
        `Cannot add request "${id}": prompt of ${promptLen} tokens exceeds the context length of ${o.contextLengthTokens}`,
        "messages",
      );
    }
    if (promptLen === 0 && request.stop_conditions.max_tokens === 0) {
      invalid(
        "empty_request",
        `Cannot add request "${id}": empty prompt with max_tokens 0`,
        "max_tokens",
      );
    }
    if (Math.ceil(promptLen / o.blockSizeTokens) > o.numGpuBlocks) {
      invalid(
        "exceeds_kv_capacity",
        `Cannot add request "${id}": prompt of ${promptLen} tokens exceeds the KV cache of ${o.numGpuBlocks} blocks of ${o.blockSizeTokens} tokens`,
        "messages",
      );
    }
    if (!o.enableChunkedPrefill && promptLen > o.maxNumBatchedTokens) {
      invalid(
        "exceeds_batch_budget",
        `Cannot add request "${id}": prompt of ${promptLen} tokens exceeds max_num_batched_tokens ${o.maxNumBatchedTokens} with chunked prefill off`,
        "messages",
      );
    }
    if (this.#scheduler.numWaiting >= o.maxWaitingRequests) {
      throw new DynamoError(
        "overloaded",
        "queue_full",
        `Cannot add request "${id}": ${this.#scheduler.numWaiting} requests are already waiting (limit ${o.maxWaitingRequests})`,
        { retryAfterS: 1 },
      );
    }
  }
}
