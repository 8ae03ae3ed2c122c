/**
 * The vLLM adapter: runs `vllm serve` under the shared external-engine supervision, with
 * the flags a worker needs (KV events over ZMQ on ports it picks, prefix caching, block
 * size, served model name, cached-token usage), sends the frontend's token ids to
 * `/v1/completions` and streams token ids back, and reads load from `/metrics`. Does not
 * start the stand-in server used in tests (vllm_api/).
 * @module
 */
export {
  createVllmEngine,
  VllmAdapter,
  type VllmAdapterOptions,
  type VllmEngineOptions,
} from "./vllm_adapter.ts";
export { httpError, streamVllmCompletion, vllmCompletionBody } from "./vllm_client.ts";
export {
  checkVllmExtraArgs,
  VLLM_DEFAULT_BLOCK_SIZE,
  VLLM_DEFAULT_MAX_NUM_BATCHED_TOKENS,
  VLLM_DEFAULT_MAX_NUM_SEQS,
  VLLM_KV_EVENTS_TOPIC,
  VLLM_PORT_NAMES,
  vllmBatchLimits,
  vllmCommand,
  vllmFlagValue,
  type VllmLaunchOptions,
} from "./vllm_command.ts";
export { cacheConfigInt, parseVllmMetrics, type VllmMetrics } from "./vllm_metrics.ts";
