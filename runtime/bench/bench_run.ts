import type { Report, RequestSample } from "../report/mod.ts";
import { latencyStats, summarize } from "../report/mod.ts";
import type { Clock } from "../util/mod.ts";
import { type LoadMode, type SessionSpec, traceWorkload } from "../workload/mod.ts";
import {
  type BenchConfig,
  endpointUrl,
  type LoadPoint,
  MAX_REQUESTS_PER_POINT,
  pointLabel,
} from "./bench_config.ts";
import { Conversation } from "./conversation.ts";
import {
  driveLoad,
  type DriveResult,
  type SessionRunner,
  type SessionSource,
} from "./load_driver.ts";
import { ProgressReporter, type ProgressSink } from "./progress.ts";
import type { PromptTokenizer } from "./prompt_words.ts";
import { ListSource, SyntheticSource } from "./session_sources.ts";
import { itlGaps, streamCompletion, type StreamOutcome } from "./stream_client.ts";

export interface BenchDeps {
  readonly fetch: typeof fetch;
  readonly clock: Clock;
  readonly tokenizer: PromptTokenizer;
  /** Token ids of one-token words that synthetic prompts are made of. */
  readonly vocabulary: readonly number[];
  readonly progress: ProgressSink;
  /** Ends the current point early, like the end of --duration (Ctrl-C). */
  readonly signal?: AbortSignal;
}

/** Distinct error types whose first message is kept in a report. */
const MAX_ERROR_EXAMPLES = 16;

/** Runs every point of the config in turn; `onReport` sees each report as soon as it is made. */
export async function runBench(
  config: BenchConfig,
  deps: BenchDeps,
  onReport: (report: Report) => Promise<void> | void = () => {},
): Promise<Report[]> {
  const reports: Report[] = [];
  for (const point of config.points) {
    if (deps.signal?.aborted) break;
    const report = await runPoint(config, point, deps);
    reports.push(report);
    await onReport(report);
  }
  return reports;
}

/** Warms up (when asked), then measures one point and summarises it into a report. */
async function runPoint(
  config: BenchConfig,
  point: LoadPoint,
  deps: BenchDeps,
): Promise<Report> {
  const label = pointLabel(point);
  if (config.warmupRequests > 0) {
    const concurrency = Math.min(
      config.warmupRequests,
      point.kind === "closed" ? point.concurrency : 4,
    );
    await measure(config, deps, {
      label: `${label} (warmup)`,
      source: warmupSource(config, deps),
      mode: { kind: "closed", concurrency },
      maxRequests: config.warmupRequests,
      progressTotal: config.warmupRequests,
      durationMs: Infinity,
    });
  }
  const { source, mode, description } = pointSource(config, point, deps);
  const wallStart = deps.clock.nowMs();
  const run = await measure(config, deps, {
    label,
    source,
    mode,
    maxRequests: Math.min(config.requests ?? Infinity, MAX_REQUESTS_PER_POINT),
    progressTotal: config.requests ?? undefined,
    durationMs: config.durationS === null ? Infinity : config.durationS * 1000,
  });
  return summarize(run.samples, {
    kind: "bench",
    label,
    workload: description,
    config: config.record,
    wallS: (deps.clock.nowMs() - wallStart) / 1000,
    sloTtftMs: config.sloTtftMs ?? undefined,
    sloItlMs: config.sloItlMs ?? undefined,
    extra: {
      concurrency: point.kind === "closed" ? point.concurrency : null,
      request_rate: point.kind === "open" ? point.ratePerS : null,
      endpoint: config.endpoint,
      url: config.baseUrl,
      model: config.model,
      warmup_requests: config.warmupRequests,
      requests_sent: run.drive.requestsStarted,
      requests_cancelled_at_end: run.drive.requestsCancelled,
      late_arrivals: run.drive.lateArrivals,
      ended_by: run.drive.endedBy,
      error_examples: run.errorExamples,
      per_request_output_tokens_per_s: perRequestTokenRate(run.samples),
    },
  });
}

/**
 * The streaming speed each user sees: (output tokens − 1) / (end − first token), over the
 * requests that streamed more than one token (as figures like a latency: mean, p50, ...).
 */
export function perRequestTokenRate(
  samples: readonly RequestSample[],
): ReturnType<typeof latencyStats> {
  const rates: number[] = [];
  for (const s of samples) {
    if (!s.ok || s.firstTokenMs === undefined || s.outputTokens < 2) continue;
    const spanMs = s.endMs - s.firstTokenMs;
    if (spanMs > 0) rates.push((s.outputTokens - 1) / (spanMs / 1000));
  }
  return latencyStats(rates);
}

interface MeasureSpec {
  readonly label: string;
  readonly source: SessionSource;
  readonly mode: LoadMode;
  readonly maxRequests: number;
  /** Shown as the progress total (the --requests given), if any. */
  readonly progressTotal: number | undefined;
  readonly durationMs: number;
}

interface Measured {
  readonly samples: RequestSample[];
  readonly drive: DriveResult;
  readonly errorExamples: Record<string, string>;
}

async function measure(config: BenchConfig, deps: BenchDeps, spec: MeasureSpec): Promise<Measured> {
  const samples: RequestSample[] = [];
  const errorExamples: Record<string, string> = {};
  const url = endpointUrl(config.baseUrl, config.endpoint);
  const headers: Record<string, string> = {
    "content-type": "application/json",
    accept: "text/event-stream",
  };
  if (config.apiKey !== null) headers["authorization"] = `Bearer ${config.apiKey}`;
  const progress = new ProgressReporter(deps.progress, deps.clock, {
    label: spec.label,
    total: spec.progressTotal,
    durationS: Number.isFinite(spec.durationMs) ? spec.durationMs / 1000 : undefined,
  });
  const shape = {
    model: config.model,
    endpoint: config.endpoint,
    ignoreEos: config.ignoreEos,
    askWorkerId: config.askWorkerId,
    extraBody: config.extraBody,
  };
  const openSession = (session: SessionSpec): SessionRunner => {
    const conversation = new Conversation(deps.tokenizer, shape);
    return {
      async turn(index, signal) {
        const body = conversation.body(session.turns[index]!);
        const more = index + 1 < session.turns.length;
        const out = await streamCompletion(deps, { url, headers, body }, {
          timeoutMs: config.timeoutS * 1000,
          signal,
          keepText: more,
        });
        if (out.status === "cancelled") return "cancelled";
        samples.push(toSample(out, conversation.lastPromptTokens));
        progress.record(out.status === "ok");
        if (out.status === "error" && out.errorType !== undefined) {
          if (
            errorExamples[out.errorType] === undefined &&
            Object.keys(errorExamples).length < MAX_ERROR_EXAMPLES
          ) errorExamples[out.errorType] = out.errorMessage ?? "";
        }
        if (out.status === "ok" && more) conversation.answer(out.text);
        return out.status;
      },
    };
  };
  progress.start();
  try {
    const drive = await driveLoad(spec.source, openSession, {
      mode: spec.mode,
      maxRequests: spec.maxRequests,
      durationMs: spec.durationMs,
      maxInflightSessions: config.maxInflight,
      clock: deps.clock,
      signal: deps.signal,
    });
    return { samples, drive, errorExamples };
  } finally {
    progress.stop();
  }
}

/** A request's sample: usage counts when the server sent them, else what the client saw. */
export function toSample(out: StreamOutcome, promptTokensSent: number): RequestSample {
  if (out.status !== "ok") {
    return {
      ok: false,
      errorType: out.errorType ?? "error",
      startMs: out.startMs,
      endMs: out.endMs,
      inputTokens: 0,
      outputTokens: 0,
    };
  }
  const outputTokens = out.usage?.completionTokens ?? out.chunkTimesMs.length;
  return {
    ok: true,
    startMs: out.startMs,
    firstTokenMs: out.firstTokenMs,
    endMs: out.endMs,
    itlMs: itlGaps(out.chunkTimesMs, outputTokens),
    inputTokens: out.usage?.promptTokens ?? promptTokensSent,
    outputTokens,
    cachedTokens: out.usage?.cachedTokens,
    worker: out.worker,
  };
}

function pointSource(
  config: BenchConfig,
  point: LoadPoint,
  deps: BenchDeps,
): { source: SessionSource; mode: LoadMode; description: string } {
  const w = config.workload;
  if (w.kind === "trace") {
    const workload = traceWorkload(w.lines, {
      blockSize: w.blockSize,
      arrivalSpeedup: w.arrivalSpeedup,
      description: `trace ${
        w.path.split("/").pop()
      } (${w.lines.length} lines), arrivals ×${w.arrivalSpeedup}`,
      maxRequests: config.requests ?? undefined,
    });
    const mode: LoadMode = point.kind === "closed"
      ? { kind: "closed", concurrency: point.concurrency }
      : { kind: "open" };
    return { source: new ListSource(workload.sessions), mode, description: workload.description };
  }
  const arrival = point.kind === "open"
    ? { kind: "poisson" as const, ratePerS: point.ratePerS }
    : { kind: "closed" as const, concurrency: point.kind === "closed" ? point.concurrency : 1 };
  const description = `synthetic: isl ${dist(w.isl)}, osl ${dist(w.osl)}${
    w.sharedPrefixRatio > 0
      ? `, shared prefix ${w.sharedPrefixRatio} over ${w.prefixGroups} group(s)`
      : ""
  }${
    w.turns > 1
      ? `, ${w.turns} turns (+${dist(w.turnIsl)} tokens, ${w.interTurnDelayMs} ms apart)`
      : ""
  }; ${config.endpoint}`;
  const initial = config.requests !== null
    ? Math.ceil(config.requests / w.turns)
    : point.kind === "open"
    ? Math.ceil(point.ratePerS * (config.durationS ?? 60) * 1.2) + 16
    : Math.max(64, arrival.kind === "closed" ? arrival.concurrency * 8 : 64);
  const source = new SyntheticSource({
    isl: w.isl,
    osl: w.osl,
    sharedPrefixRatio: w.sharedPrefixRatio,
    prefixGroups: w.prefixGroups,
    turns: w.turns,
    turnIsl: w.turnIsl,
    interTurnDelayMs: w.interTurnDelayMs,
    arrival,
    vocabulary: deps.vocabulary,
    seed: config.seed,
  }, { initial, description });
  const mode: LoadMode = point.kind === "closed"
    ? { kind: "closed", concurrency: point.concurrency }
    : { kind: "open" };
  return { source, mode, description };
}

/** Warm-up prompts: like the run's (or 128 in, 16 out for a trace), from another seed. */
function warmupSource(config: BenchConfig, deps: BenchDeps): SessionSource {
  const w = config.workload;
  const fixed = (value: number) => ({ kind: "fixed" as const, value });
  return new SyntheticSource({
    isl: w.kind === "synthetic" ? w.isl : fixed(128),
    osl: w.kind === "synthetic" ? w.osl : fixed(16),
    sharedPrefixRatio: 0,
    prefixGroups: 1,
    turns: 1,
    turnIsl: fixed(0),
    interTurnDelayMs: 0,
    arrival: { kind: "closed", concurrency: 1 },
    vocabulary: deps.vocabulary,
    seed: (config.seed ^ 0x5a17) >>> 0,
  }, { initial: config.warmupRequests, description: "warmup" });
}

function dist(d: SyntheticLoad["isl"]): string {
  switch (d.kind) {
    case "fixed":
      return String(d.value);
    case "uniform":
      return `uniform ${d.min}-${d.max}`;
    case "normal":
      return `normal ${d.mean}±${d.stddev}`;
  }
}

type SyntheticLoad = Extract<BenchConfig["workload"], { kind: "synthetic" }>;
