import type { Engine } from "../engine.ts";
import type { SglangServerArgs } from "./sglang_server_args.ts";

/** Counters the stand-in keeps, named as SGLang's (`TokenizerMetricsCollector`). */
export interface SglangCounters {
  promptTokens: number;
  generationTokens: number;
  cachedTokens: number;
  requests: number;
}

/** What the metrics renderer reads. */
export interface SglangMetricsDeps {
  readonly engine: Engine;
  readonly args: SglangServerArgs;
  /** The KV pool in tokens (SGLang's `max_total_num_tokens`). */
  readonly maxTotalNumTokens: number;
}

/**
 * `/metrics` in the Prometheus text format with SGLang's names and scheduler labels
 * (`SchedulerMetricsCollector`, `TokenizerMetricsCollector`, `sglang/srt/metrics/collector.py`).
 */
export function renderSglangMetrics(deps: SglangMetricsDeps, c: SglangCounters): string {
  const load = deps.engine.load();
  const page = deps.args.pageSize;
  const used = load.kv_used_blocks * page;
  const labels = `model_name="${
    escapeLabel(deps.args.servedModelName)
  }",engine_type="unified",tp_rank="0",pp_rank="0"`;
  const gauge = (
    name: string,
    help: string,
    value: number,
  ) => [`# HELP ${name} ${help}`, `# TYPE ${name} gauge`, `${name}{${labels}} ${fmt(value)}`];
  const counter = (
    name: string,
    help: string,
    value: number,
  ) => [`# HELP ${name} ${help}`, `# TYPE ${name} counter`, `${name}{${labels}} ${fmt(value)}`];
  return [
    ...gauge(
      "sglang:num_running_reqs",
      "The number of running requests.",
      load.num_requests_running,
    ),
    ...gauge("sglang:num_used_tokens", "The number of used tokens.", used),
    ...gauge("sglang:token_usage", "The token usage.", used / Math.max(1, deps.maxTotalNumTokens)),
    ...gauge(
      "sglang:num_queue_reqs",
      "The number of requests in the waiting queue.",
      load.num_requests_waiting,
    ),
    ...gauge(
      "sglang:cache_hit_rate",
      "The prefix cache hit rate.",
      c.cachedTokens / Math.max(1, c.promptTokens),
    ),
    ...counter("sglang:prompt_tokens_total", "Number of prefill tokens processed.", c.promptTokens),
    ...counter(
      "sglang:generation_tokens_total",
      "Number of generation tokens processed.",
      c.generationTokens,
    ),
    ...counter("sglang:cached_tokens_total", "Number of cached prompt tokens.", c.cachedTokens),
    ...counter("sglang:num_requests_total", "Number of requests processed.", c.requests),
  ].join("\n") + "\n";
}

function fmt(value: number): string {
  return Number.isInteger(value) ? `${value}.0` : String(value);
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}
