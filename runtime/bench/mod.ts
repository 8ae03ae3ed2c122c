/**
 * `dynamo bench`: drives load at any OpenAI-compatible server over HTTP (closed loop at a
 * concurrency, Poisson at a rate, or a trace's timestamps), with exact-length prompts built
 * with the model's tokenizer, and measures TTFT, ITL, latency and throughput from the
 * streamed answers into the report schema `dynamo sim` shares. Does not start servers,
 * write files or parse flags (cli/bench.ts does).
 * @module
 */
export {
  type BenchConfig,
  endpointUrl,
  type LoadPoint,
  MAX_REQUESTS_PER_POINT,
  normalizeBaseUrl,
  pointLabel,
  type SyntheticLoad,
  type TraceLoad,
} from "./bench_config.ts";
export { type BenchDeps, perRequestTokenRate, runBench, toSample } from "./bench_run.ts";
export { type BenchEndpoint, Conversation, type RequestShape } from "./conversation.ts";
export {
  driveLoad,
  type DriveOptions,
  type DriveResult,
  type SessionRunner,
  type SessionSource,
  type TurnStatus,
} from "./load_driver.ts";
export {
  formatProgress,
  ProgressReporter,
  type ProgressSink,
  type ProgressState,
} from "./progress.ts";
export { parsePrometheusText, type PromSample, sumMetric } from "./prometheus_text.ts";
export { MIN_PROMPT_WORDS, type PromptTokenizer, singleTokenWords } from "./prompt_words.ts";
export { parseReportJson } from "./report_json.ts";
export { pointPath, sweepAxis, sweepTable } from "./sweep_output.ts";
export { ListSource, MAX_SYNTHETIC_SESSIONS, SyntheticSource } from "./session_sources.ts";
export { DEFAULT_MAX_EVENT_BYTES, type SseEvent, SseParser } from "./sse_parser.ts";
export {
  itlGaps,
  type StreamClientDeps,
  streamCompletion,
  type StreamOutcome,
  type StreamRequest,
} from "./stream_client.ts";
