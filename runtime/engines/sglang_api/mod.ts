/**
 * A stand-in for SGLang's HTTP server (`sglang serve`), backed by the mocker, so the SGLang
 * adapter and the worker's supervision run end to end without a GPU: SGLang's command line,
 * `/health`, `/v1/models`, `/server_info`, `/metrics` with SGLang's names, the native
 * `/generate` (token ids in, `output_ids` and `meta_info` with `cached_tokens` out,
 * cumulative or incremental streaming, SGLang's errors), and KV events on the ZMQ endpoint
 * of `--kv-events-config`. Does not bind sockets (cli/mocker.ts does) and does not model
 * what a worker never uses (the OpenAI routes, logprobs, batches, stop strings).
 * @module
 */
export { createSglangApiApp, type SglangApiDeps } from "./sglang_api_app.ts";
export {
  renderSglangMetrics,
  type SglangCounters,
  type SglangMetricsDeps,
} from "./sglang_metrics_text.ts";
export {
  buildGenerate,
  type GenerateContext,
  GenerateRequestSchema,
  type ParsedGenerate,
  parseGenerateShape,
} from "./sglang_generate_request.ts";
export {
  parseSglangServerArgs,
  type SglangKvEventsConfig,
  type SglangServerArgs,
} from "./sglang_server_args.ts";
export { createSglangStandIn, type SglangStandIn } from "./sglang_stand_in.ts";
