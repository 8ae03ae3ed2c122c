import type {
  EngineKind,
  EngineOutput,
  EngineRequest,
  KvCacheEvent,
  WorkerLoad,
} from "../protocol/mod.ts";

/** What an engine tells its worker about itself once it is ready; it goes into the model card. */
export interface EngineInfo {
  readonly kind: EngineKind;
  readonly blockSizeTokens: number;
  readonly totalKvBlocks: number;
  readonly maxNumSeqs: number;
  readonly maxNumBatchedTokens: number;
  readonly contextLengthTokens: number;
}

/**
 * A change in an engine's availability after `start()` resolved: an external engine process
 * can die and be restarted. `down`: it cannot serve now (its worker deregisters); `ready`:
 * it serves again, with this info (its worker registers again); `failed`: it will not come
 * back (its worker should exit).
 */
export type EngineAvailability =
  | { readonly state: "down"; readonly reason: string }
  | { readonly state: "ready"; readonly info: EngineInfo }
  | { readonly state: "failed"; readonly error: Error };

/** A worker's load without its identity (the worker adds `worker_id` and `dp_rank`). */
export type EngineLoad = Omit<WorkerLoad, "worker_id" | "dp_rank">;

/**
 * An inference engine as a worker sees it: the in-process mocker, or an adapter for an
 * external vLLM / SGLang / TensorRT-LLM process. Every implementation runs the shared
 * engine conformance tests.
 */
export interface Engine {
  /** Resolves once the engine can serve requests; rejects if it cannot start. */
  start(signal?: AbortSignal): Promise<EngineInfo>;
  /**
   * Streams the output of one request. Aborting `signal` cancels it and frees its resources;
   * the stream then ends (possibly with a last item whose finish_reason is "cancelled").
   * Errors are DynamoErrors (`invalid_request` for a request the engine refuses).
   */
  generate(request: EngineRequest, signal: AbortSignal): AsyncIterable<EngineOutput>;
  /** The current load, for the event plane. */
  load(): EngineLoad;
  /** Registers a listener for the engine's KV cache events; returns an unsubscribe function. */
  onKvEvents(listener: (events: readonly KvCacheEvent[]) => void): () => void;
  /**
   * Where the engine publishes its KV events in vLLM's ZMQ wire format (kv_events/), once
   * started; undefined (or no method) when it reports them only through `onKvEvents`. A
   * worker subscribes there when it can, the path a real vLLM's events take.
   */
  kvEventSource?():
    | {
      readonly endpoint: string;
      readonly topic: string;
      readonly replayEndpoint?: string;
      /** Where the publisher's batch numbers start: 0, or the first batch seen. */
      readonly sequenceStart?: "zero" | "first_seen";
    }
    | undefined;
  /**
   * Registers a listener for availability changes after `start()` (external engines that
   * restart their process); returns an unsubscribe function. Engines that cannot go down
   * and come back have no such method.
   */
  onAvailability?(listener: (change: EngineAvailability) => void): () => void;
  /** Stops the engine; in-flight requests end with "cancelled". */
  stop(): Promise<void>;
}
