/**
 * The TensorRT-LLM adapter: runs `trtllm-serve` under the shared external-engine
 * supervision, with the LLM API options a worker needs (KV block reuse, tokens per block,
 * TensorRT-LLM's ZMQ KV event publisher on a port it picks, iteration metrics), sends the
 * frontend's token ids to `/v1/completions` with `detokenize: false` and streams token ids
 * back, and reads load from `/prometheus/metrics`. Does not start the stand-in server used
 * in tests (trtllm_api/).
 * @module
 */
export {
  createTrtllmEngine,
  parseTrtllmMetrics,
  TrtllmAdapter,
  type TrtllmAdapterOptions,
  type TrtllmEngineOptions,
  type TrtllmMetrics,
} from "./trtllm_adapter.ts";
export { streamTrtllmCompletion, trtllmCompletionBody } from "./trtllm_client.ts";
export {
  checkTrtllmExtraArgs,
  splitTrtllmOptionsFile,
  TRTLLM_DEFAULT_MAX_BATCH_SIZE,
  TRTLLM_DEFAULT_MAX_NUM_TOKENS,
  TRTLLM_DEFAULT_TOKENS_PER_BLOCK,
  TRTLLM_KV_EVENTS_TOPIC,
  TRTLLM_OPTIONS_FILE,
  TRTLLM_PORT_NAMES,
  trtllmCommand,
  type TrtllmLaunchOptions,
  trtllmLlmApiOptions,
} from "./trtllm_command.ts";
