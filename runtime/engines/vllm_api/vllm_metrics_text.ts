import type { EngineLoad } from "../engine.ts";

/** Counters the stand-in keeps, named as vLLM's (`vllm/v1/metrics/loggers.py`). */
export interface VllmCounters {
  promptTokens: number;
  generationTokens: number;
  prefixCacheQueries: number;
  prefixCacheHits: number;
  requestSuccess: Record<string, number>;
}

export function newVllmCounters(): VllmCounters {
  return {
    promptTokens: 0,
    generationTokens: 0,
    prefixCacheQueries: 0,
    prefixCacheHits: 0,
    requestSuccess: {},
  };
}

/** What the stand-in exports about its cache config (`vllm:cache_config_info` labels). */
export interface VllmCacheConfig {
  readonly blockSize: number;
  readonly numGpuBlocks: number;
  readonly enablePrefixCaching: boolean;
}

/**
 * Renders `/metrics` in the Prometheus text format with vLLM's names and labels
 * (`engine`, `model_name`), as `PrometheusStatLogger` exports them: the scheduler gauges,
 * `vllm:kv_cache_usage_perc` (a fraction), the `vllm:cache_config_info` info gauge, and
 * token, prefix-cache and request counters (with prometheus_client's `_total` suffix).
 */
export function renderVllmMetrics(
  load: EngineLoad,
  cache: VllmCacheConfig,
  counters: VllmCounters,
  modelName: string,
): string {
  const labels = `engine="0",model_name="${escapeLabel(modelName)}"`;
  const usage = load.kv_total_blocks > 0 ? load.kv_used_blocks / load.kv_total_blocks : 0;
  const out: string[] = [];
  const metric = (
    name: string,
    type: "gauge" | "counter",
    help: string,
    samples: [string, number][],
  ): void => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [extra, value] of samples) {
      out.push(`${name}{${extra === "" ? labels : `${labels},${extra}`}} ${fmt(value)}`);
    }
  };
  metric("vllm:num_requests_running", "gauge", "Number of requests in model execution batches.", [
    ["", load.num_requests_running],
  ]);
  metric("vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed.", [
    ["", load.num_requests_waiting],
  ]);
  metric("vllm:kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.", [
    ["", usage],
  ]);
  const info = [
    `block_size="${cache.blockSize}"`,
    `cache_dtype="auto"`,
    `enable_prefix_caching="${cache.enablePrefixCaching ? "True" : "False"}"`,
    `gpu_memory_utilization="0.9"`,
    `num_gpu_blocks="${cache.numGpuBlocks}"`,
  ].join(",");
  out.push(
    "# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig",
    "# TYPE vllm:cache_config_info gauge",
    `vllm:cache_config_info{${info},engine="0"} 1.0`,
  );
  metric("vllm:prompt_tokens_total", "counter", "Number of prefill tokens processed.", [
    ["", counters.promptTokens],
  ]);
  metric("vllm:generation_tokens_total", "counter", "Number of generation tokens processed.", [
    ["", counters.generationTokens],
  ]);
  metric(
    "vllm:prefix_cache_queries_total",
    "counter",
    "Prefix cache queries, in terms of number of queried tokens.",
    [["", counters.prefixCacheQueries]],
  );
  metric(
    "vllm:prefix_cache_hits_total",
    "counter",
    "Prefix cache hits, in terms of number of cached tokens.",
    [["", counters.prefixCacheHits]],
  );
  metric(
    "vllm:request_success_total",
    "counter",
    "Count of successfully processed requests.",
    Object.entries(counters.requestSuccess).map((
      [reason, n],
    ) => [`finished_reason="${reason}"`, n]),
  );
  return out.join("\n") + "\n";
}

function fmt(value: number): string {
  return Number.isInteger(value) ? `${value}.0` : String(value);
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}
