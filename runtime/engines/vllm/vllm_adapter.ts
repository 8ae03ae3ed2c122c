import { Logger } from "../../observability/mod.ts";
import type { EngineOutput, EngineRequest } from "../../protocol/mod.ts";
import type { EngineInfo } from "../engine.ts";
import {
  ExternalEngine,
  type ExternalEngineAdapter,
  type ExternalEngineOptions,
  type KvEventEndpoint,
  type LaunchPorts,
  type LaunchSpec,
  type ProbeResult,
  type ScrapedLoad,
} from "../external/mod.ts";
import { httpError, readText, streamVllmCompletion } from "./vllm_client.ts";
import {
  VLLM_KV_EVENTS_TOPIC,
  VLLM_PORT_NAMES,
  vllmBatchLimits,
  vllmCommand,
  type VllmLaunchOptions,
} from "./vllm_command.ts";
import { cacheConfigInt, parseVllmMetrics } from "./vllm_metrics.ts";

const log = new Logger("engine.vllm");

export interface VllmAdapterOptions extends VllmLaunchOptions {
  /** Context length when `/v1/models` gives no `max_model_len` (config.json's). */
  readonly contextLengthFallback?: number;
}

/**
 * vLLM's OpenAI-compatible server (`vllm serve`) as an external engine: readiness is
 * `/health` answering 200 and `/v1/models` listing the served model; the model card's
 * context length is that listing's `max_model_len`, block size and KV capacity are the
 * `block_size` and `num_gpu_blocks` labels of `vllm:cache_config_info` on `/metrics`.
 */
export class VllmAdapter implements ExternalEngineAdapter {
  readonly kind = "vllm" as const;
  readonly name = "vllm";
  readonly portNames: readonly string[] = VLLM_PORT_NAMES;
  readonly options: VllmAdapterOptions;
  readonly #batch: { maxNumSeqs: number; maxNumBatchedTokens: number };

  constructor(options: VllmAdapterOptions) {
    this.options = options;
    this.#batch = vllmBatchLimits([...options.engineFlags, ...options.extraArgs]);
  }

  command(ports: LaunchPorts): LaunchSpec {
    return vllmCommand(this.options, ports);
  }

  async probe(ports: LaunchPorts, signal: AbortSignal): Promise<ProbeResult> {
    const base = baseUrl(ports);
    const served = this.options.servedModelName;
    let step = "GET /health";
    try {
      const health = await fetch(`${base}/health`, { signal });
      await health.body?.cancel();
      if (health.status !== 200) return { ready: false, why: `${step} answered ${health.status}` };
      step = "GET /v1/models";
      const models = await getJson(`${base}/v1/models`, signal) as {
        data?: { id?: unknown; max_model_len?: unknown }[];
      };
      const card = models.data?.find((m) => m.id === served);
      if (card === undefined) {
        const ids = (models.data ?? []).map((m) => String(m.id)).join(", ");
        return { ready: false, why: `${step} does not list "${served}" (it lists: ${ids})` };
      }
      step = "GET /metrics";
      const metrics = parseVllmMetrics(await getText(`${base}/metrics`, signal));
      const totalKvBlocks = cacheConfigInt(metrics.cacheConfig, "num_gpu_blocks");
      if (totalKvBlocks === undefined) {
        return { ready: false, why: `${step} has no vllm:cache_config_info with num_gpu_blocks` };
      }
      const blockSize = cacheConfigInt(metrics.cacheConfig, "block_size") ??
        this.options.blockSizeTokens;
      if (blockSize !== this.options.blockSizeTokens) {
        log.warn("vLLM uses another block size than asked; the model card uses vLLM's", {
          asked: this.options.blockSizeTokens,
          engine: blockSize,
        });
      }
      const context = typeof card.max_model_len === "number" && card.max_model_len > 0
        ? card.max_model_len
        : this.options.contextLengthFallback;
      if (context === undefined) {
        return { ready: false, why: `${step} gives no max_model_len and config.json none either` };
      }
      const info: EngineInfo = {
        kind: "vllm",
        blockSizeTokens: blockSize,
        totalKvBlocks,
        maxNumSeqs: this.#batch.maxNumSeqs,
        maxNumBatchedTokens: this.#batch.maxNumBatchedTokens,
        contextLengthTokens: context,
      };
      return { ready: true, info };
    } catch (err) {
      return { ready: false, why: `${step}: ${describe(err)}` };
    }
  }

  generate(
    ports: LaunchPorts,
    request: EngineRequest,
    signal: AbortSignal,
  ): AsyncIterable<EngineOutput> {
    return streamVllmCompletion(baseUrl(ports), request, {
      servedModelName: this.options.servedModelName,
      signal,
    });
  }

  async scrapeLoad(
    ports: LaunchPorts,
    info: EngineInfo,
    signal: AbortSignal,
  ): Promise<ScrapedLoad> {
    const metrics = parseVllmMetrics(await getText(`${baseUrl(ports)}/metrics`, signal));
    const total = cacheConfigInt(metrics.cacheConfig, "num_gpu_blocks") ?? info.totalKvBlocks;
    return {
      kv_used_blocks: Math.round((metrics.kvCacheUsage ?? 0) * total),
      kv_total_blocks: total,
      num_requests_running: metrics.numRequestsRunning,
      num_requests_waiting: metrics.numRequestsWaiting,
    };
  }

  kvEventSource(ports: LaunchPorts): KvEventEndpoint | undefined {
    if (!this.options.enablePrefixCaching) return undefined;
    return {
      endpoint: `tcp://127.0.0.1:${ports["kv_events"]}`,
      topic: VLLM_KV_EVENTS_TOPIC,
      replayEndpoint: `tcp://127.0.0.1:${ports["kv_replay"]}`,
    };
  }
}

/** Options of `createVllmEngine`: the adapter's, plus the supervision's. */
export type VllmEngineOptions =
  & VllmAdapterOptions
  & Omit<ExternalEngineOptions, "adapter">;

/** A vLLM engine a worker supervises: `ExternalEngine` with the vLLM adapter. */
export function createVllmEngine(options: VllmEngineOptions): ExternalEngine {
  return new ExternalEngine({ ...options, adapter: new VllmAdapter(options) });
}

/** An error's message, with its cause's (fetch says only "fetch failed" without it). */
function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : "";
  return `${err.message}${cause}`;
}

function baseUrl(ports: LaunchPorts): string {
  return `http://127.0.0.1:${ports["http"]}`;
}

async function getText(url: string, signal: AbortSignal): Promise<string> {
  const res = await fetch(url, { signal });
  const text = await readText(res);
  if (!res.ok) throw httpError(res.status, text);
  return text;
}

async function getJson(url: string, signal: AbortSignal): Promise<unknown> {
  return JSON.parse(await getText(url, signal));
}
