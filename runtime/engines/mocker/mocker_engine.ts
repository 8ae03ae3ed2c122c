import { DynamoError } from "../../errors/mod.ts";
import { vllmEventFromInternal, VllmKvEventPublisher } from "../../kv_events/mod.ts";
import { Logger } from "../../observability/mod.ts";
import type {
  CompletionUsage,
  EngineOutput,
  EngineRequest,
  KvCacheEvent,
} from "../../protocol/mod.ts";
import { type Clock, type Deferred, deferred, type Rng, systemClock } from "../../util/mod.ts";
import type { Engine, EngineInfo, EngineLoad } from "../engine.ts";
import { OutputStream } from "./_output_stream.ts";
import { MockerCore, type MockerPassStats, type MockerStep } from "./mocker_core.ts";
import type { MockerOptionsInput } from "./mocker_options.ts";
import type { MockerVocabulary } from "./output_tokens.ts";
import type { PerfModel } from "./timing.ts";

export interface MockerEngineDeps {
  readonly options?: MockerOptionsInput;
  readonly vocabulary: MockerVocabulary;
  /** Defaults to the system clock. */
  readonly clock?: Clock;
  readonly rng?: Rng;
  readonly perfModel?: PerfModel;
  readonly dpRank?: number;
  /** Items one stream buffers before it merges new tokens into its last item (default 64). */
  readonly maxBufferedOutputs?: number;
  /** How far the loop may fall behind its schedule before it resyncs to the clock (default 1000 ms). */
  readonly maxLagMs?: number;
  /** Called after every pass, for forward-pass metrics. */
  readonly onPass?: (pass: MockerPassStats) => void;
  /**
   * Also publish KV events as vLLM does, on a ZMQ PUB socket bound at `start()` (one batch
   * per pass), so a worker takes them the way it takes a real vLLM's. `onKvEvents` keeps
   * working either way.
   */
  readonly zmqKvEvents?: MockerZmqKvEvents;
}

/** Where the mocker publishes its KV events in vLLM's ZMQ format. */
export interface MockerZmqKvEvents {
  /** `tcp://HOST:PORT`; port 0 or `*` picks a free one (see `kvEventSource()` after start). */
  readonly endpoint: string;
  /** The topic frame. Default "" (vLLM's default). */
  readonly topic?: string;
  /** Also serve vLLM's replay protocol on a ROUTER socket here. */
  readonly replayEndpoint?: string;
}

const MAX_KV_LISTENERS = 64;
const log = new Logger("mocker");
/** Longest stretch the loop runs catch-up passes without yielding to timers and I/O. */
const CATCH_UP_SLICE_MS = 4;
const NO_USAGE: CompletionUsage = { prompt_tokens: 0, completion_tokens: 0 };

/**
 * Usage for a stream ended early: the core may have generated a token whose pass had not
 * ended yet, which the client never sees, so completion_tokens counts what was streamed.
 */
function streamedUsage(stream: OutputStream, usage: CompletionUsage | undefined): CompletionUsage {
  return { ...(usage ?? NO_USAGE), completion_tokens: stream.tokensPushed };
}

/**
 * The live mocker: runs a MockerCore against a clock, sleeping for each pass's simulated
 * duration before its tokens and KV events become visible.
 */
export class MockerEngine implements Engine {
  readonly #core: MockerCore;
  readonly #clock: Clock;
  readonly #maxBuffered: number;
  readonly #maxLagMs: number;
  readonly #onPass: ((pass: MockerPassStats) => void) | undefined;
  readonly #zmqOptions: MockerZmqKvEvents | undefined;
  readonly #dpRank: number;
  #zmq: VllmKvEventPublisher | undefined;
  readonly #streams = new Map<string, OutputStream>();
  readonly #listeners = new Set<(events: readonly KvCacheEvent[]) => void>();
  readonly #stopController = new AbortController();
  #state: "new" | "starting" | "running" | "stopped" = "new";
  #idle: Deferred<void> | undefined;
  #loop: Promise<void> | undefined;
  #failure: unknown = undefined;
  #stopped: Promise<void> | undefined;

  constructor(deps: MockerEngineDeps) {
    this.#core = new MockerCore({
      options: deps.options,
      vocabulary: deps.vocabulary,
      rng: deps.rng,
      perfModel: deps.perfModel,
      dpRank: deps.dpRank,
    });
    this.#clock = deps.clock ?? systemClock;
    this.#maxBuffered = deps.maxBufferedOutputs ?? 64;
    this.#maxLagMs = deps.maxLagMs ?? 1000;
    this.#onPass = deps.onPass;
    this.#zmqOptions = deps.zmqKvEvents;
    this.#dpRank = deps.dpRank ?? 0;
  }

  async start(signal?: AbortSignal): Promise<EngineInfo> {
    if (this.#state !== "new") {
      throw new DynamoError(
        "internal",
        "already_started",
        "Cannot start mocker: it was already started",
      );
    }
    this.#state = "starting";
    const o = this.#core.options;
    const stop = this.#stopController.signal;
    try {
      const startup = signal === undefined ? stop : AbortSignal.any([signal, stop]);
      if (o.startupTimeMs > 0) await this.#clock.sleep(o.startupTimeMs, startup);
    } catch (err) {
      this.#state = "stopped";
      if (!stop.aborted) throw err;
    }
    if (this.#state !== "starting") {
      throw new DynamoError("unavailable", "engine_stopped", "Cannot start mocker: it was stopped");
    }
    if (this.#zmqOptions !== undefined) {
      try {
        this.#zmq = await VllmKvEventPublisher.bind({
          ...this.#zmqOptions,
          dpRank: this.#dpRank,
          clock: this.#clock,
          // The mocker's hashes are full u64s; send those >= 2^63 as negative i64, as a vLLM
          // whose hashes pass through a signed conversion does, so workers decode both forms.
          signedHashes: true,
        });
      } catch (err) {
        this.#state = "stopped";
        throw err;
      }
      // stop() during the bind: it could not close what did not exist yet.
      if (this.#state !== "starting") {
        await this.#zmq.close();
        throw new DynamoError(
          "unavailable",
          "engine_stopped",
          "Cannot start mocker: it was stopped",
        );
      }
    }
    this.#state = "running";
    this.#loop = this.#run();
    return {
      kind: "mocker",
      blockSizeTokens: o.blockSizeTokens,
      totalKvBlocks: o.numGpuBlocks,
      maxNumSeqs: o.maxNumSeqs,
      maxNumBatchedTokens: o.maxNumBatchedTokens,
      contextLengthTokens: o.contextLengthTokens,
    };
  }

  /**
   * Queues the request and streams its output. Throws `invalid_request` / `overloaded`
   * synchronously when the core refuses it, `unavailable` when the engine is not running.
   */
  generate(request: EngineRequest, signal: AbortSignal): AsyncIterable<EngineOutput> {
    if (this.#state !== "running") {
      throw new DynamoError(
        "unavailable",
        "engine_not_running",
        `Cannot generate: mocker is ${this.#failure === undefined ? this.#state : "failed"}`,
        { cause: this.#failure },
      );
    }
    const id = request.request_id;
    if (this.#streams.has(id)) {
      throw new DynamoError(
        "invalid_request",
        "duplicate_request_id",
        `Cannot add request "${id}": a request with this id is live`,
      );
    }
    const stream = new OutputStream(this.#maxBuffered);
    if (signal.aborted) {
      stream.push([], "cancelled", {
        prompt_tokens: request.token_ids.length,
        completion_tokens: 0,
      });
      return this.#iterate(id, stream, signal, () => {});
    }
    this.#core.addRequest(request, this.#clock.nowMs());
    this.#streams.set(id, stream);
    const onAbort = (): void => this.#cancel(id);
    signal.addEventListener("abort", onAbort, { once: true });
    this.#wake();
    return this.#iterate(id, stream, signal, onAbort);
  }

  load(): EngineLoad {
    return this.#core.load();
  }

  onKvEvents(listener: (events: readonly KvCacheEvent[]) => void): () => void {
    if (this.#listeners.size >= MAX_KV_LISTENERS) {
      throw new DynamoError(
        "internal",
        "too_many_listeners",
        `Cannot add KV event listener: ${MAX_KV_LISTENERS} are registered`,
      );
    }
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  kvEventSource(): { endpoint: string; topic: string; replayEndpoint?: string } | undefined {
    const zmq = this.#zmq;
    if (zmq === undefined) return undefined;
    return zmq.replayEndpoint === undefined
      ? { endpoint: zmq.endpoint, topic: zmq.topic }
      : { endpoint: zmq.endpoint, topic: zmq.topic, replayEndpoint: zmq.replayEndpoint };
  }

  /**
   * Ends the loop, cancels every request ("cancelled"), emits a "cleared" KV event and
   * closes the ZMQ publisher (a subscriber may miss that last batch: the socket lingers 0).
   */
  stop(): Promise<void> {
    this.#stopped ??= this.#shutDown();
    return this.#stopped;
  }

  async #shutDown(): Promise<void> {
    this.#state = "stopped";
    this.#stopController.abort();
    this.#wake();
    await this.#loop;
    const { outputs, kvEvents } = this.#core.reset();
    const usage = new Map(outputs.map((o) => [o.requestId, o.usage]));
    for (const [id, stream] of this.#streams) {
      stream.push([], "cancelled", streamedUsage(stream, usage.get(id)));
    }
    this.#streams.clear();
    this.#publish(kvEvents);
    await this.#zmq?.close();
  }

  async *#iterate(
    id: string,
    stream: OutputStream,
    signal: AbortSignal,
    onAbort: () => void,
  ): AsyncGenerator<EngineOutput> {
    try {
      for (;;) {
        const item = await stream.next();
        if (item === undefined) return;
        yield item;
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
      // A consumer that stops reading early must not leave its request running.
      if (!stream.ended) this.#cancel(id);
    }
  }

  #cancel(id: string): void {
    const stream = this.#streams.get(id);
    if (stream === undefined) return;
    this.#streams.delete(id);
    const out = this.#core.cancel(id);
    stream.push([], "cancelled", streamedUsage(stream, out?.usage));
  }

  async #run(): Promise<void> {
    try {
      await this.#passes();
    } catch (err) {
      // A bug in the core: end every stream with "error" rather than hang them.
      this.#failure = err;
      this.#state = "stopped";
      for (const stream of this.#streams.values()) {
        stream.push([], "error", streamedUsage(stream, undefined));
      }
      this.#streams.clear();
    }
  }

  async #passes(): Promise<void> {
    const stop = this.#stopController.signal;
    let nextStartMs: number | undefined;
    let lastMacrotaskMs = this.#clock.nowMs();
    while (!stop.aborted) {
      if (!this.#core.hasWork()) {
        nextStartMs = undefined;
        this.#idle = deferred<void>();
        await this.#idle.promise;
        continue;
      }
      const now = this.#clock.nowMs();
      // Each pass starts where the previous one ended, so sleep overshoot never accumulates.
      let startMs = nextStartMs ?? now;
      if (now - startMs > this.#maxLagMs) startMs = now;
      const step = this.#core.step(startMs);
      const endMs = startMs + step.durationMs;
      const waitMs = endMs - this.#clock.nowMs();
      if (waitMs > 0) {
        try {
          await this.#clock.sleep(waitMs, stop);
        } catch (err) {
          if (stop.aborted) return;
          throw err;
        }
        lastMacrotaskMs = this.#clock.nowMs();
      }
      this.#deliver(step);
      nextStartMs = endMs;
      if (waitMs > 0) continue;
      // Behind schedule (passes shorter than timer resolution): catch up back to back, letting
      // consumers run between passes and timers and I/O at least every few milliseconds.
      if (this.#clock.nowMs() - lastMacrotaskMs >= CATCH_UP_SLICE_MS) {
        await new Promise((resolve) => setTimeout(resolve, 0));
        lastMacrotaskMs = this.#clock.nowMs();
      } else {
        await Promise.resolve();
      }
    }
  }

  #deliver(step: MockerStep): void {
    for (const out of step.outputs) {
      const stream = this.#streams.get(out.requestId);
      if (stream === undefined) continue;
      stream.push(out.tokenIds, out.finishReason, out.usage);
      if (out.finishReason !== undefined) this.#streams.delete(out.requestId);
    }
    this.#publish(step.kvEvents);
    try {
      this.#onPass?.(step.pass);
    } catch {
      // Metrics hooks must not stop the engine.
    }
  }

  #publish(events: readonly KvCacheEvent[]): void {
    if (events.length === 0) return;
    if (this.#zmq !== undefined) {
      try {
        const blockSize = this.#core.options.blockSizeTokens;
        this.#zmq.publish(events.map((e) => vllmEventFromInternal(e.data, blockSize)));
      } catch (err) {
        log.error("Cannot publish KV events on ZMQ", { err });
      }
    }
    for (const listener of this.#listeners) {
      try {
        listener(events);
      } catch {
        // A failing subscriber must not stop the engine; publishers report their own errors.
      }
    }
  }

  #wake(): void {
    const idle = this.#idle;
    this.#idle = undefined;
    idle?.resolve();
  }
}
