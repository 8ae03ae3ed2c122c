import type { PromSample } from "../../bench/mod.ts";
import { Logger } from "../../observability/mod.ts";
import type { EngineOutput, EngineRequest } from "../../protocol/mod.ts";
import type { EngineInfo } from "../engine.ts";
import {
  describeError,
  ExternalEngine,
  type ExternalEngineAdapter,
  type ExternalEngineOptions,
  fetchEngineJson,
  fetchEngineMetrics,
  fetchEngineText,
  type KvEventEndpoint,
  type LaunchPorts,
  type LaunchSpec,
  metricSum,
  positiveIntFlag,
  type ProbeResult,
  type ScrapedLoad,
} from "../external/mod.ts";
import { streamTrtllmCompletion } from "./trtllm_client.ts";
import {
  TRTLLM_DEFAULT_MAX_BATCH_SIZE,
  TRTLLM_DEFAULT_MAX_NUM_TOKENS,
  TRTLLM_KV_EVENTS_TOPIC,
  TRTLLM_PORT_NAMES,
  trtllmCommand,
  type TrtllmLaunchOptions,
} from "./trtllm_command.ts";

const log = new Logger("engine.trtllm");
const ENGINE = "TensorRT-LLM";

export interface TrtllmAdapterOptions extends TrtllmLaunchOptions {
  /** Context length when the command line sets no `--max_seq_len` (config.json's). */
  readonly contextLengthFallback?: number;
}

/** What the worker reads from `trtllm-serve`'s `/prometheus/metrics` iteration gauges. */
export interface TrtllmMetrics {
  readonly numRequestsRunning: number | undefined;
  readonly numRequestsWaiting: number | undefined;
  readonly kvCacheMaxBlocks: number | undefined;
  readonly kvCacheUsedBlocks: number | undefined;
  readonly kvCacheUtilization: number | undefined;
  readonly kvCacheTokensPerBlock: number | undefined;
}

/**
 * Reads `trtllm-serve`'s iteration gauges (`MetricsCollector`,
 * `tensorrt_llm/metrics/collector.py`): `trtllm_num_requests_running`,
 * `trtllm_num_requests_waiting`, `trtllm_kv_cache_max_blocks`, `trtllm_kv_cache_used_blocks`,
 * `trtllm_kv_cache_utilization` and `trtllm_kv_cache_tokens_per_block`. They exist once
 * the engine has run an iteration; absent ones are undefined.
 */
export function parseTrtllmMetrics(samples: readonly PromSample[]): TrtllmMetrics {
  return {
    numRequestsRunning: metricSum(samples, "trtllm_num_requests_running"),
    numRequestsWaiting: metricSum(samples, "trtllm_num_requests_waiting"),
    kvCacheMaxBlocks: metricSum(samples, "trtllm_kv_cache_max_blocks"),
    kvCacheUsedBlocks: metricSum(samples, "trtllm_kv_cache_used_blocks"),
    kvCacheUtilization: metricSum(samples, "trtllm_kv_cache_utilization"),
    kvCacheTokensPerBlock: metricSum(samples, "trtllm_kv_cache_tokens_per_block"),
  };
}

/**
 * TensorRT-LLM's OpenAI server (`trtllm-serve`) as an external engine. Readiness is
 * `/health` answering 200 and `/v1/models` naming the model (its id is what requests name;
 * `trtllm-serve` has no served-model-name flag, the worker's `--model-name` is what clients
 * see). KV capacity comes from the `trtllm_kv_cache_max_blocks` gauge, which appears after
 * the first iteration: when it is missing the probe runs one through `/health_generate`.
 * The context length is `--max_seq_len` or config.json's (`/v1/models` gives none). Its load
 * gauges describe the last iteration, which an idle engine does not update
 * (`loadIsLastIteration`).
 */
export class TrtllmAdapter implements ExternalEngineAdapter {
  readonly kind = "trtllm" as const;
  readonly name = "trtllm";
  readonly portNames: readonly string[] = TRTLLM_PORT_NAMES;
  readonly loadIsLastIteration = true;
  readonly options: TrtllmAdapterOptions;
  readonly #batch: { maxBatchSize: number; maxNumTokens: number; maxSeqLen: number | undefined };
  /** The id `/v1/models` gives the model: derived from the command line, the same each launch. */
  #modelId: string | undefined;

  constructor(options: TrtllmAdapterOptions) {
    this.options = options;
    const args = [...options.engineFlags, ...options.extraArgs];
    const seqLen = positiveIntFlag(ENGINE, args, "--max_seq_len", 0);
    this.#batch = {
      maxBatchSize: positiveIntFlag(
        ENGINE,
        args,
        "--max_batch_size",
        TRTLLM_DEFAULT_MAX_BATCH_SIZE,
      ),
      maxNumTokens: positiveIntFlag(
        ENGINE,
        args,
        "--max_num_tokens",
        TRTLLM_DEFAULT_MAX_NUM_TOKENS,
      ),
      maxSeqLen: seqLen === 0 ? undefined : seqLen,
    };
  }

  command(ports: LaunchPorts): LaunchSpec {
    return trtllmCommand(this.options, ports);
  }

  async probe(ports: LaunchPorts, signal: AbortSignal): Promise<ProbeResult> {
    const base = baseUrl(ports);
    let step = "GET /health";
    try {
      const health = await fetch(`${base}/health`, { signal });
      await health.body?.cancel();
      if (health.status !== 200) return { ready: false, why: `${step} answered ${health.status}` };
      step = "GET /v1/models";
      const models = await fetchEngineJson(ENGINE, `${base}/v1/models`, signal) as {
        data?: { id?: unknown }[];
      };
      const id = models.data?.[0]?.id;
      if (typeof id !== "string") return { ready: false, why: `${step} lists no model` };
      this.#modelId = id;
      step = "GET /prometheus/metrics";
      let metrics = parseTrtllmMetrics(await this.#metrics(base, signal));
      if (metrics.kvCacheMaxBlocks === undefined) {
        // The gauges appear with the first iteration; one generated token makes one.
        step = "GET /health_generate";
        await fetchEngineText(ENGINE, `${base}/health_generate`, signal);
        step = "GET /prometheus/metrics";
        metrics = parseTrtllmMetrics(await this.#metrics(base, signal));
      }
      return this.#info(metrics);
    } catch (err) {
      return { ready: false, why: `${step}: ${describeError(err)}` };
    }
  }

  #metrics(base: string, signal: AbortSignal): Promise<PromSample[]> {
    return fetchEngineMetrics(ENGINE, `${base}/prometheus/metrics`, signal);
  }

  #info(metrics: TrtllmMetrics): ProbeResult {
    const asked = this.options.blockSizeTokens;
    const blockSize = metrics.kvCacheTokensPerBlock ?? asked;
    if (blockSize !== asked) {
      log.warn("TensorRT-LLM uses another block size than asked; the model card uses its", {
        asked,
        engine: blockSize,
      });
    }
    const fromTokens = this.options.kvCacheMaxTokens === undefined
      ? undefined
      : Math.floor(this.options.kvCacheMaxTokens / blockSize);
    const totalKvBlocks = metrics.kvCacheMaxBlocks ?? fromTokens;
    if (totalKvBlocks === undefined || totalKvBlocks < 1) {
      return {
        ready: false,
        why:
          "GET /prometheus/metrics has no trtllm_kv_cache_max_blocks after an iteration (needs a trtllm-serve with iteration metrics, or pass --num-gpu-blocks-override)",
      };
    }
    const context = this.#batch.maxSeqLen ?? this.options.contextLengthFallback;
    if (context === undefined) {
      return {
        ready: false,
        why: "no context length: pass --context-length (or a model with config.json)",
      };
    }
    const info: EngineInfo = {
      kind: "trtllm",
      blockSizeTokens: blockSize,
      totalKvBlocks,
      maxNumSeqs: this.#batch.maxBatchSize,
      maxNumBatchedTokens: this.#batch.maxNumTokens,
      contextLengthTokens: context,
    };
    return { ready: true, info };
  }

  generate(
    ports: LaunchPorts,
    request: EngineRequest,
    signal: AbortSignal,
  ): AsyncIterable<EngineOutput> {
    return streamTrtllmCompletion(baseUrl(ports), request, {
      model: this.#modelId ?? this.options.model,
      signal,
    });
  }

  async scrapeLoad(
    ports: LaunchPorts,
    info: EngineInfo,
    signal: AbortSignal,
  ): Promise<ScrapedLoad> {
    const m = parseTrtllmMetrics(await this.#metrics(baseUrl(ports), signal));
    const total = m.kvCacheMaxBlocks ?? info.totalKvBlocks;
    const used = m.kvCacheUsedBlocks ?? Math.round((m.kvCacheUtilization ?? 0) * total);
    return {
      kv_used_blocks: Math.min(total, used),
      kv_total_blocks: total,
      num_requests_running: m.numRequestsRunning ?? 0,
      num_requests_waiting: m.numRequestsWaiting ?? 0,
    };
  }

  kvEventSource(ports: LaunchPorts): KvEventEndpoint | undefined {
    if (!this.options.enablePrefixCaching || !this.options.kvEvents) return undefined;
    // No replay endpoint: TensorRT-LLM's replay answers carry a topic frame vLLM's do not,
    // and its publisher fences any loss with an AllBlocksCleared batch instead.
    return {
      endpoint: `tcp://127.0.0.1:${ports["kv_events"]}`,
      topic: TRTLLM_KV_EVENTS_TOPIC,
      // Its publisher numbers batches from the wall clock in ns, not from 0.
      sequenceStart: "first_seen",
    };
  }
}

/** Options of `createTrtllmEngine`: the adapter's, plus the supervision's. */
export type TrtllmEngineOptions = TrtllmAdapterOptions & Omit<ExternalEngineOptions, "adapter">;

/** A TensorRT-LLM engine a worker supervises: `ExternalEngine` with the TensorRT-LLM adapter. */
export function createTrtllmEngine(options: TrtllmEngineOptions): ExternalEngine {
  return new ExternalEngine({ ...options, adapter: new TrtllmAdapter(options) });
}

function baseUrl(ports: LaunchPorts): string {
  return `http://127.0.0.1:${ports["http"]}`;
}
