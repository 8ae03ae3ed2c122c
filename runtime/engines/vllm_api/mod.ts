/**
 * A stand-in for vLLM's OpenAI-compatible server (`vllm serve`), backed by the mocker, so
 * the vLLM adapter and the worker's supervision run end to end without a GPU: vLLM's
 * command line, `/health`, `/v1/models`, `/v1/completions` (token-id prompts,
 * `return_token_ids`, streaming, usage with cached tokens, vLLM's 400s), `/metrics` with
 * vLLM's names, and KV events on vLLM's ZMQ endpoint. Does not bind sockets (cli/mocker.ts
 * does) and does not model what a worker never uses (chat, logprobs, batches of prompts).
 * @module
 */
export {
  type CompletionContext,
  type CompletionRequest,
  CompletionRequestSchema,
  parseCompletion,
  type ParsedCompletion,
} from "./completion_request.ts";
export { createVllmApiApp, errorResponse, type VllmApiDeps } from "./vllm_api_app.ts";
export {
  newVllmCounters,
  renderVllmMetrics,
  type VllmCacheConfig,
  type VllmCounters,
} from "./vllm_metrics_text.ts";
export { type KvEventsConfig, parseVllmServeArgs, type VllmServeArgs } from "./vllm_serve_args.ts";
export { createVllmStandIn, type VllmStandIn } from "./vllm_stand_in.ts";
