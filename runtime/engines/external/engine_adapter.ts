import type { EngineKind, EngineOutput, EngineRequest } from "../../protocol/mod.ts";
import type { EngineInfo, EngineLoad } from "../engine.ts";
import type { LaunchSpec } from "./engine_process.ts";

/** The ports picked for one launch of an engine, by the names its adapter asked for. */
export type LaunchPorts = Readonly<Record<string, number>>;

/** One readiness check: ready with the engine's info, or not yet and why (for the error). */
export type ProbeResult =
  | { readonly ready: true; readonly info: EngineInfo }
  | { readonly ready: false; readonly why: string };

/** What an engine's metrics say about its load (the supervisor adds booked prefill tokens). */
export type ScrapedLoad = Omit<EngineLoad, "active_prefill_tokens" | "active_decode_blocks">;

/** Where an engine publishes KV events in vLLM's ZMQ format. */
export interface KvEventEndpoint {
  readonly endpoint: string;
  readonly topic: string;
  readonly replayEndpoint?: string;
  /**
   * Where the publisher's batch sequence starts: 0 (vLLM, SGLang: a first batch with a
   * higher number means batches were missed), or whatever the first batch seen carries
   * (TensorRT-LLM numbers batches from the wall clock).
   */
  readonly sequenceStart?: "zero" | "first_seen";
}

/**
 * What makes one external engine (vLLM, SGLang, TensorRT-LLM) different from another: its
 * command line, how to tell it is ready, and how to talk to it. The process supervision
 * (sessions, watchdog, readiness deadline, restarts, stop) is shared (`ExternalEngine`), so
 * an adapter is a small file with no timers or processes of its own. Every method gets the
 * ports of the launch it is about; an adapter keeps no per-launch state.
 */
export interface ExternalEngineAdapter {
  readonly kind: EngineKind;
  /** Short name for logs and output prefixes (`vllm`). */
  readonly name: string;
  /** Ports to pick for each launch (`http`, `kv_events`, ...). */
  readonly portNames: readonly string[];
  /**
   * The engine's load metrics are a snapshot of its last iteration (TensorRT-LLM's
   * iteration stats), which an idle engine never updates: while none of the worker's
   * requests is in flight, its running and waiting counts are taken as 0.
   */
  readonly loadIsLastIteration?: boolean;
  /** The command line and extra environment of a launch on these ports. */
  command(ports: LaunchPorts): LaunchSpec;
  /** Checks once whether the engine on these ports is ready; must not throw. */
  probe(ports: LaunchPorts, signal: AbortSignal): Promise<ProbeResult>;
  /**
   * Streams one request's output. Errors are DynamoErrors (`invalid_request` for a request
   * the engine refused, `engine_error` when it failed or could not be reached). When
   * `signal` aborts, the HTTP call is aborted and the iteration throws.
   */
  generate(
    ports: LaunchPorts,
    request: EngineRequest,
    signal: AbortSignal,
  ): AsyncIterable<EngineOutput>;
  /** Reads the engine's load from its metrics; throws when it cannot. */
  scrapeLoad(ports: LaunchPorts, info: EngineInfo, signal: AbortSignal): Promise<ScrapedLoad>;
  /** The engine's KV event publisher on these ports, if it has one. */
  kvEventSource(ports: LaunchPorts): KvEventEndpoint | undefined;
}
