/**
 * A stand-in for TensorRT-LLM's OpenAI server (`trtllm-serve`), backed by the mocker, so
 * the TensorRT-LLM adapter and the worker's supervision run end to end without a GPU:
 * `trtllm-serve`'s command line and `--extra_llm_api_options` YAML, `/health`,
 * `/health_generate`, `/v1/models`, `/v1/completions` (token ids in and, with
 * `detokenize: false`, out; usage with cached tokens), `/prometheus/metrics` iteration
 * gauges, `/metrics` iteration stats, and KV events from its ZMQ publisher in TensorRT-LLM's
 * map form. Does not bind the HTTP socket (cli/mocker.ts does) and does not model what a
 * worker never uses (chat, logprobs, beam search, the KV event replay socket).
 * @module
 */
export { createTrtllmApiApp, type TrtllmApiDeps } from "./trtllm_api_app.ts";
export {
  iterationJson,
  renderTrtllmPrometheus,
  type TrtllmCounters,
  type TrtllmIteration,
  TrtllmIterationStats,
  type TrtllmMetricsDeps,
} from "./trtllm_metrics_text.ts";
export {
  type ParsedTrtllmCompletion,
  parseTrtllmCompletion,
  type TrtllmCompletionContext,
  type TrtllmCompletionRequest,
  TrtllmCompletionRequestSchema,
} from "./trtllm_completion_request.ts";
export {
  TrtllmKvEventPublisher,
  type TrtllmKvEventPublisherOptions,
} from "./trtllm_kv_publisher.ts";
export {
  parseTrtllmServeArgs,
  type TrtllmKvEvents,
  type TrtllmServeArgs,
} from "./trtllm_serve_args.ts";
export { createTrtllmStandIn, type TrtllmStandIn } from "./trtllm_stand_in.ts";
