import assert from "node:assert/strict";
import { cacheConfigInt, parseVllmMetrics } from "./vllm_metrics.ts";

Deno.test("parseVllmMetrics() reads vLLM's gauges and cache config, current and older names", () => {
  const current = parseVllmMetrics(`# HELP vllm:num_requests_running Number of requests.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 3.0
vllm:num_requests_waiting{engine="0",model_name="m"} 1.0
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.25
vllm:cache_config_info{block_size="16",cache_dtype="auto",engine="0",num_gpu_blocks="2048"} 1.0
`);
  assert.equal(current.numRequestsRunning, 3);
  assert.equal(current.numRequestsWaiting, 1);
  assert.equal(current.kvCacheUsage, 0.25);
  assert.equal(cacheConfigInt(current.cacheConfig, "num_gpu_blocks"), 2048);
  assert.equal(cacheConfigInt(current.cacheConfig, "block_size"), 16);

  const older = parseVllmMetrics(`vllm:gpu_cache_usage_perc{model_name="m"} 0.5
vllm:cache_config_info{block_size="16",num_gpu_blocks="None"} 1.0
`);
  assert.equal(older.kvCacheUsage, 0.5);
  assert.equal(older.numRequestsRunning, 0);
  assert.equal(cacheConfigInt(older.cacheConfig, "num_gpu_blocks"), undefined);
  assert.equal(parseVllmMetrics("").cacheConfig, undefined);
});
