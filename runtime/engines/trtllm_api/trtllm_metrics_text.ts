import type { EngineLoad } from "../engine.ts";
import type { TrtllmServeArgs } from "./trtllm_serve_args.ts";

/** One engine iteration as `trtllm-serve`'s iteration stats describe it. */
export interface TrtllmIteration {
  readonly iter: number;
  readonly timestampMs: number;
  readonly latencyMs: number;
  readonly load: EngineLoad;
}

/**
 * The iteration stats the stand-in keeps: the latest (for the Prometheus gauges, which an
 * idle engine leaves as they were) and a bounded list not yet read from `/metrics`.
 */
export class TrtllmIterationStats {
  readonly #maxKept: number;
  #pending: TrtllmIteration[] = [];
  #latest: TrtllmIteration | undefined;
  #count = 0;

  constructor(maxKept = 1_000) {
    this.#maxKept = maxKept;
  }

  record(startMs: number, endMs: number, load: EngineLoad): void {
    const it = { iter: this.#count++, timestampMs: endMs, latencyMs: endMs - startMs, load };
    this.#latest = it;
    if (this.#pending.length >= this.#maxKept) this.#pending.shift();
    this.#pending.push(it);
  }

  get latest(): TrtllmIteration | undefined {
    return this.#latest;
  }

  /** The iterations since the last call (`get_stats_async` drains its queue). */
  drain(): TrtllmIteration[] {
    const out = this.#pending;
    this.#pending = [];
    return out;
  }
}

/** Request counters the stand-in keeps, as `MetricsCollector` counts them. */
export interface TrtllmCounters {
  promptTokens: number;
  generationTokens: number;
  cachedTokens: number;
  success: Record<string, number>;
}

/** What the metrics renderers read. */
export interface TrtllmMetricsDeps {
  readonly args: TrtllmServeArgs;
  readonly totalKvBlocks: number;
  readonly stats: TrtllmIterationStats;
}

/** One iteration as `/metrics` reports it (the executor's `IterationStats` as JSON). */
export function iterationJson(
  it: TrtllmIteration,
  deps: TrtllmMetricsDeps,
): Record<string, unknown> {
  return {
    iter: it.iter,
    iterLatencyMS: it.latencyMs,
    timestamp: new Date(it.timestampMs).toISOString(),
    numActiveRequests: it.load.num_requests_running,
    numQueuedRequests: it.load.num_requests_waiting,
    maxNumActiveRequests: deps.args.maxBatchSize,
    kvCacheStats: {
      maxNumBlocks: deps.totalKvBlocks,
      freeNumBlocks: deps.totalKvBlocks - it.load.kv_used_blocks,
      usedNumBlocks: it.load.kv_used_blocks,
      tokensPerBlock: deps.args.tokensPerBlock,
    },
  };
}

/**
 * `/prometheus/metrics` with `MetricsCollector`'s names (`tensorrt_llm/metrics/collector.py`)
 * and its labels (`model_name`, `engine_type`, both "undefined" in `trtllm-serve`). The
 * iteration gauges appear after the first iteration and then describe the latest one.
 */
export function renderTrtllmPrometheus(deps: TrtllmMetricsDeps, c: TrtllmCounters): string {
  const labels = `model_name="undefined",engine_type="undefined"`;
  const lines: string[] = [];
  const metric = (name: string, type: string, help: string, samples: [string, number][]) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [extra, v] of samples) {
      lines.push(`${name}{${extra === "" ? labels : `${labels},${extra}`}} ${fmt(v)}`);
    }
  };
  metric(
    "trtllm_request_success_total",
    "counter",
    "Count of successfully processed requests.",
    Object.entries(c.success).map(([r, n]) => [`finished_reason="${r}"`, n]),
  );
  metric(
    "trtllm_prompt_tokens_total",
    "counter",
    "Cumulative number of prompt (input) tokens processed.",
    [["", c.promptTokens]],
  );
  metric(
    "trtllm_generation_tokens_total",
    "counter",
    "Cumulative number of generation (output) tokens produced.",
    [["", c.generationTokens]],
  );
  metric(
    "trtllm_prompt_cached_tokens_total",
    "counter",
    "Cumulative number of cached prompt tokens.",
    [["", c.cachedTokens]],
  );
  const it = deps.args.enableIterPerfStats ? deps.stats.latest : undefined;
  if (it !== undefined) {
    const total = deps.totalKvBlocks;
    const used = it.load.kv_used_blocks;
    metric("trtllm_num_requests_running", "gauge", "Number of active requests", [[
      "",
      it.load.num_requests_running,
    ]]);
    metric("trtllm_num_requests_waiting", "gauge", "Number of queued requests", [[
      "",
      it.load.num_requests_waiting,
    ]]);
    metric("trtllm_kv_cache_max_blocks", "gauge", "Maximum number of KV cache blocks", [[
      "",
      total,
    ]]);
    metric("trtllm_kv_cache_used_blocks", "gauge", "Number of used KV cache blocks", [["", used]]);
    metric("trtllm_kv_cache_free_blocks", "gauge", "Number of free KV cache blocks", [[
      "",
      total - used,
    ]]);
    metric("trtllm_kv_cache_utilization", "gauge", "KV cache utilization", [[
      "",
      total > 0 ? used / total : 0,
    ]]);
    metric("trtllm_kv_cache_tokens_per_block", "gauge", "Tokens per KV cache block", [[
      "",
      deps.args.tokensPerBlock,
    ]]);
    metric("trtllm_iteration_latency_seconds", "gauge", "Latency of the last iteration", [[
      "",
      it.latencyMs / 1000,
    ]]);
  }
  return lines.join("\n") + "\n";
}

function fmt(value: number): string {
  return Number.isInteger(value) ? `${value}.0` : String(value);
}
