import { parsePrometheusText, type PromSample } from "../../bench/mod.ts";

/** What the worker reads from vLLM's `/metrics`. */
export interface VllmMetrics {
  readonly numRequestsRunning: number;
  readonly numRequestsWaiting: number;
  /** KV cache usage, 0..1; undefined when no usage gauge is exported. */
  readonly kvCacheUsage: number | undefined;
  /** `vllm:cache_config_info` labels (`block_size`, `num_gpu_blocks`, ...), if exported. */
  readonly cacheConfig: Readonly<Record<string, string>> | undefined;
}

/**
 * Reads vLLM's Prometheus metrics (`vllm/v1/metrics/loggers.py`, PrometheusStatLogger):
 * the gauges `vllm:num_requests_running`, `vllm:num_requests_waiting`,
 * `vllm:kv_cache_usage_perc` (a fraction, "1 means 100 percent"; older versions call it
 * `vllm:gpu_cache_usage_perc`), and the info gauge `vllm:cache_config_info` whose labels
 * carry the cache config (`block_size`, `num_gpu_blocks`, ...). Samples are labelled per
 * engine (`engine`, `model_name`): counts are summed, usage is averaged.
 */
export function parseVllmMetrics(text: string): VllmMetrics {
  const samples = parsePrometheusText(text);
  const usage = values(samples, "vllm:kv_cache_usage_perc");
  const legacy = usage.length > 0 ? usage : values(samples, "vllm:gpu_cache_usage_perc");
  const info = samples.find((s) => s.name === "vllm:cache_config_info");
  return {
    numRequestsRunning: sum(values(samples, "vllm:num_requests_running")),
    numRequestsWaiting: sum(values(samples, "vllm:num_requests_waiting")),
    kvCacheUsage: legacy.length === 0 ? undefined : sum(legacy) / legacy.length,
    cacheConfig: info?.labels,
  };
}

/** A positive integer label of `vllm:cache_config_info`, or undefined ("None" before init). */
export function cacheConfigInt(
  config: Readonly<Record<string, string>> | undefined,
  label: string,
): number | undefined {
  const raw = config?.[label];
  if (raw === undefined || !/^\d+$/.test(raw)) return undefined;
  const n = Number(raw);
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

function values(samples: readonly PromSample[], name: string): number[] {
  return samples.filter((s) => s.name === name && Number.isFinite(s.value)).map((s) => s.value);
}

function sum(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}
