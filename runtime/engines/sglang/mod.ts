/**
 * The SGLang adapter: runs SGLang's HTTP server (`sglang serve`, or `python -m
 * sglang.launch_server`) under the shared external-engine supervision, with the flags a
 * worker needs (KV events over ZMQ on ports it picks, the page size, prefix caching,
 * served model name, Prometheus metrics), sends the frontend's token ids to the native
 * `/generate` and streams `output_ids` back, and reads load from `/metrics`. Does not start
 * the stand-in server used in tests (sglang_api/).
 * @module
 */
export {
  createSglangEngine,
  parseSglangMetrics,
  SGLANG_FALLBACK_MAX_PREFILL_TOKENS,
  SGLANG_FALLBACK_MAX_RUNNING_REQUESTS,
  SglangAdapter,
  type SglangAdapterOptions,
  type SglangEngineOptions,
  type SglangMetrics,
} from "./sglang_adapter.ts";
export { sglangGenerateBody, SglangOutputTracker, streamSglangGenerate } from "./sglang_client.ts";
export {
  checkSglangExtraArgs,
  SGLANG_DEFAULT_PAGE_SIZE,
  SGLANG_KV_EVENTS_TOPIC,
  SGLANG_PORT_NAMES,
  sglangCommand,
  type SglangLaunchOptions,
} from "./sglang_command.ts";
