import { Logger } from "../../observability/mod.ts";
import type { EngineOutput, EngineRequest } from "../../protocol/mod.ts";
import type { EngineInfo } from "../engine.ts";
import {
  describeError,
  engineHttpError,
  ExternalEngine,
  type ExternalEngineAdapter,
  type ExternalEngineOptions,
  fetchEngineJson,
  fetchEngineMetrics,
  type KvEventEndpoint,
  type LaunchPorts,
  type LaunchSpec,
  metricSum,
  positiveIntFlag,
  type ProbeResult,
  readEngineText,
  type ScrapedLoad,
} from "../external/mod.ts";
import { streamSglangGenerate } from "./sglang_client.ts";
import {
  SGLANG_KV_EVENTS_TOPIC,
  SGLANG_PORT_NAMES,
  sglangCommand,
  type SglangLaunchOptions,
} from "./sglang_command.ts";

const log = new Logger("engine.sglang");
const ENGINE = "SGLang";

/**
 * Batch limits reported when neither the command line nor SGLang's server info gives one:
 * SGLang sizes `max_running_requests` from memory at start; `max_prefill_tokens` defaults to
 * 16384 (`sglang/srt/server_args.py`).
 */
export const SGLANG_FALLBACK_MAX_RUNNING_REQUESTS = 1024;
export const SGLANG_FALLBACK_MAX_PREFILL_TOKENS = 16_384;

export type SglangAdapterOptions = SglangLaunchOptions;

/** What the worker reads from SGLang's `/metrics` (`SchedulerMetricsCollector`). */
export interface SglangMetrics {
  readonly numRunningReqs: number;
  readonly numQueueReqs: number;
  /** KV tokens in use (`sglang:num_used_tokens`), if exported. */
  readonly numUsedTokens: number | undefined;
  /** Fraction of the KV pool in use (`sglang:token_usage`), if exported. */
  readonly tokenUsage: number | undefined;
}

/**
 * Reads SGLang's Prometheus metrics (`sglang/srt/metrics/collector.py`,
 * `SchedulerMetricsCollector`; served with `--enable-metrics`): the gauges
 * `sglang:num_running_reqs`, `sglang:num_queue_reqs`, `sglang:num_used_tokens` and
 * `sglang:token_usage`, labelled per scheduler (`model_name`, `tp_rank`, ...); counts are
 * summed.
 */
export function parseSglangMetrics(
  samples: Parameters<typeof metricSum>[0],
): SglangMetrics {
  return {
    numRunningReqs: metricSum(samples, "sglang:num_running_reqs") ?? 0,
    numQueueReqs: metricSum(samples, "sglang:num_queue_reqs") ?? 0,
    numUsedTokens: metricSum(samples, "sglang:num_used_tokens"),
    tokenUsage: metricSum(samples, "sglang:token_usage"),
  };
}

/**
 * SGLang's HTTP server (`sglang serve`) as an external engine: readiness is `/health`
 * answering 200 (SGLang answers 503 until its warm-up request has run), `/v1/models` listing
 * the served model (its `max_model_len` is the card's context length), and the server info
 * (`/server_info`, or `/get_server_info` before SGLang renamed it) giving the page size and
 * the KV pool (`max_total_num_tokens`, so blocks = tokens / page size) and batch limits.
 */
export class SglangAdapter implements ExternalEngineAdapter {
  readonly kind = "sglang" as const;
  readonly name = "sglang";
  readonly portNames: readonly string[] = SGLANG_PORT_NAMES;
  readonly options: SglangAdapterOptions;

  constructor(options: SglangAdapterOptions) {
    this.options = options;
  }

  command(ports: LaunchPorts): LaunchSpec {
    return sglangCommand(this.options, ports);
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
      const models = await fetchEngineJson(ENGINE, `${base}/v1/models`, signal) as {
        data?: { id?: unknown; max_model_len?: unknown }[];
      };
      const card = models.data?.find((m) => m.id === served);
      if (card === undefined) {
        const ids = (models.data ?? []).map((m) => String(m.id)).join(", ");
        return { ready: false, why: `${step} does not list "${served}" (it lists: ${ids})` };
      }
      step = "GET /server_info";
      const info = await serverInfo(base, signal);
      return this.#info(card.max_model_len, info);
    } catch (err) {
      return { ready: false, why: `${step}: ${describeError(err)}` };
    }
  }

  #info(maxModelLen: unknown, info: Record<string, unknown>): ProbeResult {
    const pageSize = positive(info["page_size"]) ?? this.options.pageSizeTokens;
    if (pageSize !== this.options.pageSizeTokens) {
      log.warn("SGLang uses another page size than asked; the model card uses SGLang's", {
        asked: this.options.pageSizeTokens,
        engine: pageSize,
      });
    }
    const totalTokens = positive(info["max_total_num_tokens"]);
    if (totalTokens === undefined) {
      return { ready: false, why: "the server info has no max_total_num_tokens" };
    }
    const context = positive(maxModelLen) ?? positive(info["context_length"]);
    if (context === undefined) {
      return { ready: false, why: "GET /v1/models gives no max_model_len" };
    }
    const args = [...this.options.engineFlags, ...this.options.extraArgs];
    const states = Array.isArray(info["internal_states"]) ? info["internal_states"] : [];
    const firstState = (states[0] ?? {}) as Record<string, unknown>;
    const maxRunning = positive(info["max_running_requests"]) ??
      positive(firstState["max_running_requests"]) ??
      positiveIntFlag(ENGINE, args, "--max-running-requests", SGLANG_FALLBACK_MAX_RUNNING_REQUESTS);
    const batchedTokens = positive(info["chunked_prefill_size"]) ??
      positive(info["max_prefill_tokens"]) ?? SGLANG_FALLBACK_MAX_PREFILL_TOKENS;
    const engineInfo: EngineInfo = {
      kind: "sglang",
      blockSizeTokens: pageSize,
      totalKvBlocks: Math.max(1, Math.floor(totalTokens / pageSize)),
      maxNumSeqs: maxRunning,
      maxNumBatchedTokens: batchedTokens,
      contextLengthTokens: context,
    };
    return { ready: true, info: engineInfo };
  }

  generate(
    ports: LaunchPorts,
    request: EngineRequest,
    signal: AbortSignal,
  ): AsyncIterable<EngineOutput> {
    return streamSglangGenerate(baseUrl(ports), request, { signal });
  }

  async scrapeLoad(
    ports: LaunchPorts,
    info: EngineInfo,
    signal: AbortSignal,
  ): Promise<ScrapedLoad> {
    const m = parseSglangMetrics(
      await fetchEngineMetrics(ENGINE, `${baseUrl(ports)}/metrics`, signal),
    );
    const total = info.totalKvBlocks;
    const used = m.numUsedTokens !== undefined
      ? Math.ceil(m.numUsedTokens / info.blockSizeTokens)
      : Math.round((m.tokenUsage ?? 0) * total);
    return {
      kv_used_blocks: Math.min(total, used),
      kv_total_blocks: total,
      num_requests_running: m.numRunningReqs,
      num_requests_waiting: m.numQueueReqs,
    };
  }

  kvEventSource(ports: LaunchPorts): KvEventEndpoint | undefined {
    if (!this.options.enablePrefixCaching || !this.options.kvEvents) return undefined;
    return {
      endpoint: `tcp://127.0.0.1:${ports["kv_events"]}`,
      topic: SGLANG_KV_EVENTS_TOPIC,
      replayEndpoint: `tcp://127.0.0.1:${ports["kv_replay"]}`,
    };
  }
}

/** Options of `createSglangEngine`: the adapter's, plus the supervision's. */
export type SglangEngineOptions = SglangAdapterOptions & Omit<ExternalEngineOptions, "adapter">;

/** An SGLang engine a worker supervises: `ExternalEngine` with the SGLang adapter. */
export function createSglangEngine(options: SglangEngineOptions): ExternalEngine {
  return new ExternalEngine({ ...options, adapter: new SglangAdapter(options) });
}

/** `/server_info`, or `/get_server_info` on an SGLang from before the rename (404). */
async function serverInfo(base: string, signal: AbortSignal): Promise<Record<string, unknown>> {
  for (const path of ["/server_info", "/get_server_info"]) {
    const res = await fetch(`${base}${path}`, { signal });
    const text = await readEngineText(res, ENGINE);
    if (res.status === 404 && path === "/server_info") continue;
    if (!res.ok) throw engineHttpError(ENGINE, res.status, text);
    return JSON.parse(text) as Record<string, unknown>;
  }
  throw engineHttpError(ENGINE, 404, "no server info");
}

function positive(value: unknown): number | undefined {
  return typeof value === "number" && Number.isSafeInteger(value) && value > 0 ? value : undefined;
}

function baseUrl(ports: LaunchPorts): string {
  return `http://127.0.0.1:${ports["http"]}`;
}
