import { DynamoError } from "../../errors/mod.ts";
import { getLogLevel, Logger } from "../../observability/mod.ts";
import type { EngineOutput, EngineRequest, KvCacheEvent } from "../../protocol/mod.ts";
import { type Clock, systemClock } from "../../util/mod.ts";
import type { Engine, EngineAvailability, EngineInfo, EngineLoad } from "../engine.ts";
import type { ExternalEngineAdapter, KvEventEndpoint, ScrapedLoad } from "./engine_adapter.ts";
import { detachedLauncher, type ProcessLauncher } from "./engine_process.ts";
import {
  DEFAULT_SUPERVISION_POLICY,
  ENGINE_STOPPING,
  EngineSupervisor,
  type ReadyLaunch,
  type SupervisionPolicy,
} from "./engine_supervisor.ts";
import { pickFreePorts } from "./free_ports.ts";

export interface ExternalEngineOptions {
  readonly adapter: ExternalEngineAdapter;
  /** Defaults to `DEFAULT_SUPERVISION_POLICY`, field by field. */
  readonly policy?: Partial<SupervisionPolicy>;
  /** How often the engine's metrics are read for `load()`. Default 500 ms. */
  readonly loadIntervalMs?: number;
  /** Requests in flight at once; more are refused as overloaded. Default 65,536. */
  readonly maxInflightRequests?: number;
  readonly launcher?: ProcessLauncher;
  readonly clock?: Clock;
  readonly pickPorts?: (names: readonly string[]) => Promise<Record<string, number>>;
  /** Where the engine's output lines go. Default: stderr as `[name pid] line` at log level info+. */
  readonly output?: (line: string, pid: number) => void;
}

interface Inflight {
  readonly promptTokens: number;
  firstTokenSeen: boolean;
}

const NO_LOAD: ScrapedLoad = {
  kv_used_blocks: 0,
  kv_total_blocks: 0,
  num_requests_running: 0,
  num_requests_waiting: 0,
};

/**
 * An engine that runs as its own process (vLLM, SGLang, TensorRT-LLM), driven through an
 * adapter: the supervisor keeps the process up (see `EngineSupervisor`), requests go to the
 * current launch over HTTP, load comes from scraping its metrics on an interval plus the
 * prompt tokens of requests that have no first token yet. While the engine is down,
 * `generate` refuses at once with `unavailable`/`draining` (the frontend retries another
 * worker); requests that were running when it died fail with `engine_error`; on `stop()`
 * they end with "cancelled".
 */
export class ExternalEngine implements Engine {
  readonly adapter: ExternalEngineAdapter;
  readonly #supervisor: EngineSupervisor;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #loadIntervalMs: number;
  readonly #maxInflight: number;
  readonly #inflight = new Map<symbol, Inflight>();
  readonly #closing = new AbortController();
  #scraped: ScrapedLoad = NO_LOAD;
  #scrapeLoop: Promise<void> | undefined;
  #stopped: Promise<void> | undefined;

  constructor(options: ExternalEngineOptions) {
    this.adapter = options.adapter;
    this.#clock = options.clock ?? systemClock;
    this.#log = new Logger(`engine.${options.adapter.name}`);
    this.#loadIntervalMs = options.loadIntervalMs ?? 500;
    this.#maxInflight = options.maxInflightRequests ?? 65_536;
    const name = options.adapter.name;
    this.#supervisor = new EngineSupervisor({
      adapter: options.adapter,
      launcher: options.launcher ?? detachedLauncher(),
      clock: this.#clock,
      pickPorts: options.pickPorts ?? pickFreePorts,
      policy: { ...DEFAULT_SUPERVISION_POLICY, ...options.policy },
      output: options.output ?? ((line, pid) => {
        if (getLogLevel() !== "off") console.error(`[${name} ${pid}] ${line}`);
      }),
      logger: this.#log,
    });
    this.#supervisor.onEvent((event) => {
      if (event.kind === "ready") this.#scraped = idleLoad(event.launch.info);
      if (event.kind === "down") {
        this.#scraped = { ...NO_LOAD, kv_total_blocks: this.#scraped.kv_total_blocks };
      }
    });
  }

  /** The pid of the engine process serving now, if any (for logs and tests). */
  get pid(): number | undefined {
    return this.#supervisor.current?.pid;
  }

  /** The engine's last output lines. */
  lastLines(count?: number): string[] {
    return this.#supervisor.tail.lines(count);
  }

  async start(signal?: AbortSignal): Promise<EngineInfo> {
    const onAbort = (): void => void this.stop();
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const launch = await this.#supervisor.start();
      this.#scraped = idleLoad(launch.info);
      this.#scrapeLoop ??= this.#scrapeForever();
      return launch.info;
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
  }

  generate(request: EngineRequest, signal: AbortSignal): AsyncIterable<EngineOutput> {
    const launch = this.#supervisor.current;
    if (launch === undefined || this.#closing.signal.aborted) {
      // Nothing reached an engine: the reason the frontend retries on another worker.
      throw new DynamoError(
        "unavailable",
        "draining",
        `Cannot generate: engine "${this.adapter.name}" is not running (restarting or stopping)`,
        { retryAfterS: 1 },
      );
    }
    if (this.#inflight.size >= this.#maxInflight) {
      throw new DynamoError(
        "overloaded",
        "too_many_requests",
        `Cannot generate: ${this.#maxInflight} requests are in flight`,
        { retryAfterS: 1 },
      );
    }
    return this.#stream(launch, request, signal);
  }

  load(): EngineLoad {
    let prefill = 0;
    for (const r of this.#inflight.values()) if (!r.firstTokenSeen) prefill += r.promptTokens;
    const idle = this.adapter.loadIsLastIteration === true && this.#inflight.size === 0;
    return {
      ...this.#scraped,
      ...(idle ? { num_requests_running: 0, num_requests_waiting: 0 } : {}),
      active_decode_blocks: this.#scraped.kv_used_blocks,
      active_prefill_tokens: prefill,
    };
  }

  /** External engines publish KV events only on their ZMQ socket (see `kvEventSource`). */
  onKvEvents(_listener: (events: readonly KvCacheEvent[]) => void): () => void {
    return () => {};
  }

  kvEventSource(): KvEventEndpoint | undefined {
    const launch = this.#supervisor.current;
    return launch === undefined ? undefined : this.adapter.kvEventSource(launch.ports);
  }

  onAvailability(listener: (change: EngineAvailability) => void): () => void {
    return this.#supervisor.onEvent((event) => {
      if (event.kind === "ready") listener({ state: "ready", info: event.launch.info });
      else if (event.kind === "down") listener({ state: "down", reason: event.reason });
      else listener({ state: "failed", error: event.error });
    });
  }

  /** Stops the engine process (SIGTERM, then SIGKILL after the policy's timeout). */
  stop(): Promise<void> {
    this.#stopped ??= (async () => {
      this.#closing.abort();
      await this.#supervisor.stop();
      await this.#scrapeLoop;
    })();
    return this.#stopped;
  }

  async *#stream(
    launch: ReadyLaunch,
    request: EngineRequest,
    signal: AbortSignal,
  ): AsyncGenerator<EngineOutput> {
    const key = Symbol(request.request_id);
    const entry: Inflight = { promptTokens: request.token_ids.length, firstTokenSeen: false };
    this.#inflight.set(key, entry);
    let streamed = 0;
    const cancelled = (): EngineOutput => ({
      token_ids: [],
      finish_reason: "cancelled",
      completion_usage: { prompt_tokens: request.token_ids.length, completion_tokens: streamed },
    });
    try {
      if (signal.aborted) {
        yield cancelled();
        return;
      }
      const both = AbortSignal.any([signal, launch.signal]);
      try {
        for await (const out of this.adapter.generate(launch.ports, request, both)) {
          if (out.token_ids.length > 0) entry.firstTokenSeen = true;
          streamed += out.token_ids.length;
          yield out;
          if (out.finish_reason !== undefined) return;
        }
      } catch (err) {
        if (signal.aborted || launch.signal.reason === ENGINE_STOPPING) {
          yield cancelled();
          return;
        }
        if (launch.signal.aborted && launch.signal.reason instanceof DynamoError) {
          throw launch.signal.reason;
        }
        throw err;
      }
      if (signal.aborted || launch.signal.reason === ENGINE_STOPPING) {
        yield cancelled();
        return;
      }
      throw new DynamoError(
        "engine_error",
        "stream_incomplete",
        `Engine "${this.adapter.name}" ended a response without a finish reason`,
      );
    } finally {
      this.#inflight.delete(key);
    }
  }

  async #scrapeForever(): Promise<void> {
    const closing = this.#closing.signal;
    let failures = 0;
    while (!closing.aborted) {
      const launch = this.#supervisor.current;
      if (launch !== undefined) {
        try {
          const signal = AbortSignal.any([
            closing,
            launch.signal,
            AbortSignal.timeout(Math.max(1_000, this.#loadIntervalMs * 4)),
          ]);
          const load = await this.adapter.scrapeLoad(launch.ports, launch.info, signal);
          if (this.#supervisor.current === launch) this.#scraped = load;
          failures = 0;
        } catch (err) {
          if (!closing.aborted && !launch.signal.aborted && failures++ % 20 === 0) {
            this.#log.warn("Cannot read the engine's metrics", {
              error: err instanceof Error ? err.message : String(err),
            });
          }
        }
      }
      try {
        await this.#clock.sleep(this.#loadIntervalMs, closing);
      } catch {
        return;
      }
    }
  }
}

function idleLoad(info: EngineInfo): ScrapedLoad {
  return { ...NO_LOAD, kv_total_blocks: info.totalKvBlocks };
}
