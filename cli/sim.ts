import { basename, dirname, join, resolve } from "node:path";
import type { MockerOptionsInput } from "../runtime/engines/mod.ts";
import { DynamoError } from "../runtime/errors/mod.ts";
import { formatSummary, renderHtml, type Report } from "../runtime/report/mod.ts";
import type { KvRouterConfig } from "../runtime/router/mod.ts";
import { ROUTER_MODES, type RouterMode } from "../runtime/router/mod.ts";
import {
  formatSimExtra,
  MAX_SIM_WORKERS,
  SIM_PROMPT_VOCABULARY,
  simReport,
  simulate,
  type SimWorkload,
  simWorkloadOf,
  traceSimWorkload,
} from "../runtime/sim/mod.ts";
import {
  type Distribution,
  type LoadMode,
  parseDistribution,
  parseMooncakeTrace,
  syntheticWorkload,
} from "../runtime/workload/mod.ts";
import type { Command } from "./command.ts";
import { type FlagSpec, type ParsedArgs, UsageError } from "./flags.ts";
import { KV_ROUTER_FLAGS, kvRouterConfig } from "./router_flags.ts";
import { MOCKER_FLAGS, type MockerFlagSpec, mockerOptions } from "./worker.ts";

/**
 * The engine context length `dynamo sim` assumes unless told otherwise: long enough for
 * every request of the public Mooncake traces (longest prompt 191,378 tokens), which a
 * 40,960-token engine would refuse.
 */
export const SIM_CONTEXT_LENGTH_TOKENS = 262_144;

/**
 * `dynamo worker`'s mocker flags, same names and meanings. The sim's own --seed seeds the
 * engines too, and engines start at once in virtual time, so --startup-time is left out.
 */
const SIM_MOCKER_FLAGS: readonly MockerFlagSpec[] = MOCKER_FLAGS
  .filter((f) => f.name !== "seed" && f.name !== "startup-time")
  .map((f) =>
    f.name === "context-length"
      ? {
        ...f,
        default: SIM_CONTEXT_LENGTH_TOKENS,
        help: "Longest prompt + output, in tokens (the sim's default fits the Mooncake traces)",
      } as MockerFlagSpec
      : f
  );

/** Flags that only make sense for a synthetic workload. */
const SYNTHETIC_ONLY = [
  "isl",
  "osl",
  "shared-prefix-ratio",
  "prefix-groups",
  "turns",
  "turn-isl",
  "inter-turn-delay-ms",
  "request-rate",
] as const;

const WORKLOAD_FLAGS: readonly FlagSpec[] = [
  {
    name: "trace",
    type: "string",
    valueName: "file",
    help: "Replay a Mooncake JSONL trace (timestamp ms, input_length, output_length, hash_ids)",
  },
  { name: "trace-block-size", type: "int", default: 512, min: 1, help: "Tokens per trace hash id" },
  {
    name: "arrival-speedup",
    type: "number",
    default: 1,
    min: 0,
    exclusiveMin: true,
    help: "Divide trace timestamps by this (2 = twice the request rate)",
  },
  { name: "max-requests", type: "int", min: 1, help: "Replay only the first N trace lines" },
  {
    name: "requests",
    type: "int",
    min: 1,
    help: "Synthetic: sessions (each sends --turns requests)",
  },
  {
    name: "isl",
    type: "string",
    default: "1024",
    valueName: "dist",
    help: "Synthetic: first-turn prompt tokens: N, uniform:MIN:MAX or normal:MEAN:STDDEV",
  },
  {
    name: "osl",
    type: "string",
    default: "128",
    valueName: "dist",
    help: "Synthetic: output tokens per request (same forms as --isl)",
  },
  {
    name: "shared-prefix-ratio",
    type: "number",
    default: 0,
    min: 0,
    max: 1,
    help: "Synthetic: fraction of the first prompt shared within its prefix group",
  },
  { name: "prefix-groups", type: "int", default: 1, min: 1, help: "Synthetic: shared prefixes" },
  {
    name: "turns",
    type: "int",
    default: 1,
    min: 1,
    help: "Synthetic: turns per session; each extends the conversation so far",
  },
  {
    name: "turn-isl",
    type: "string",
    default: "256",
    valueName: "dist",
    help: "Synthetic: new prompt tokens of each later turn",
  },
  {
    name: "inter-turn-delay-ms",
    type: "number",
    default: 0,
    min: 0,
    help: "Synthetic: think time between an answer and the next turn",
  },
  {
    name: "request-rate",
    type: "number",
    min: 0,
    exclusiveMin: true,
    help: "Open loop: new sessions per second (Poisson arrivals)",
  },
  {
    name: "concurrency",
    type: "int",
    min: 1,
    help: "Closed loop: sessions in flight; a trace is then replayed in order, ignoring timestamps",
  },
];

const OUTPUT_FLAGS: readonly FlagSpec[] = [
  { name: "slo-ttft-ms", type: "number", min: 0, exclusiveMin: true, help: "Goodput: TTFT SLO" },
  {
    name: "slo-itl-ms",
    type: "number",
    min: 0,
    exclusiveMin: true,
    help: "Goodput: SLO on a request's mean inter-token latency",
  },
  { name: "report", type: "string", valueName: "file.json", help: "Write the report as JSON" },
  {
    name: "sweep-workers",
    type: "string",
    valueName: "list",
    help: "Sweep: worker counts: 1,2,4,8",
  },
  {
    name: "sweep-router-modes",
    type: "string",
    valueName: "list",
    help: `Sweep: router modes, e.g. kv,round-robin (${ROUTER_MODES.join(", ")})`,
  },
  {
    name: "report-dir",
    type: "string",
    valueName: "dir",
    help: "Sweep: write one JSON report per point and sweep.html comparing them here",
  },
];

export const simCommand: Command = {
  name: "sim",
  summary: "Simulate a cluster of mocker engines and a router in virtual time",
  usage: "(--trace FILE | --requests N --request-rate R | --requests N --concurrency C) " +
    "[--workers N] [--router-mode MODE] [engine and router flags] [--report FILE.json]",
  details: [
    "Runs N mocker engines behind one router in virtual time, deterministically for a given",
    "--seed, with the same router, scheduler, KV manager and timing code as the live roles.",
    "Requests are sent with ignore_eos (unless --no-ignore-eos), so each produces exactly its",
    "output length. A trace's timestamps set arrivals; --concurrency replays it closed loop.",
    "",
    "Examples:",
    "  dynamo sim --trace conversation_trace.jsonl --workers 8 --router-mode kv --report r.json",
    "  dynamo sim --requests 200 --isl 4096 --osl 256 --shared-prefix-ratio 0.5 --prefix-groups 4 \\",
    "      --request-rate 4 --workers 4 --router-mode kv",
    "  dynamo sim --trace t.jsonl --workers 8 --sweep-router-modes kv,round-robin --report-dir out/",
  ].join("\n"),
  flags: [
    {
      name: "workers",
      type: "int",
      default: 1,
      min: 1,
      max: MAX_SIM_WORKERS,
      help: "Mocker engines in the cluster",
    },
    {
      name: "router-mode",
      type: "string",
      default: "round-robin",
      choices: ROUTER_MODES,
      valueName: "mode",
      help: "How the router picks a worker for each request",
    },
    { name: "seed", type: "int", default: 0, help: "Seeds the workload, the router and outputs" },
    {
      name: "ignore-eos",
      type: "boolean",
      default: true,
      help: "Exact output lengths; --no-ignore-eos lets engines stop early at a natural EOS",
    },
    ...WORKLOAD_FLAGS,
    ...OUTPUT_FLAGS,
    ...SIM_MOCKER_FLAGS.map(({ option: _o, scale: _s, ...flag }) => flag as FlagSpec),
    ...KV_ROUTER_FLAGS,
  ],
  run: runSim,
};

interface Point {
  readonly mode: RouterMode;
  readonly workers: number;
}

async function runSim(args: ParsedArgs): Promise<number> {
  const v = args.values;
  const seed = v["seed"] as number;
  const engine = mockerOptions(args, SIM_MOCKER_FLAGS);
  const kvRouter = kvRouterConfig(args, seed);
  const points = sweepPoints(args);
  const reportPath = v["report"] as string | undefined;
  const reportDir = v["report-dir"] as string | undefined;
  const sweeping = args.explicit.has("sweep-workers") || args.explicit.has("sweep-router-modes");
  if (sweeping && reportDir === undefined) {
    throw new UsageError("Missing flag --report-dir: a sweep writes one report per point there");
  }
  if (sweeping && reportPath !== undefined) {
    throw new UsageError("Invalid flag --report with a sweep: use --report-dir");
  }
  const workload = await loadWorkload(args);
  await checkOutputs(reportPath, reportDir);
  const reports: Report[] = [];
  for (const point of points) {
    const started = performance.now();
    const result = await simulate(workload, {
      workers: point.workers,
      engine,
      routerMode: point.mode,
      kvRouter,
      seed,
      ignoreEos: v["ignore-eos"] as boolean,
    });
    const summary = simReport(result, {
      label: `${point.mode}, ${point.workers} worker${point.workers === 1 ? "" : "s"}`,
      workload: workload.description,
      config: reportConfig(args, point, engine, kvRouter),
      wallS: 0,
      sloTtftMs: v["slo-ttft-ms"] as number | undefined,
      sloItlMs: v["slo-itl-ms"] as number | undefined,
    });
    // Wall time of the whole point: the simulation and summarising its samples.
    const report: Report = { ...summary, wall_s: (performance.now() - started) / 1000 };
    console.log(formatSummary(report));
    console.log(formatSimExtra(report));
    reports.push(report);
    const json = JSON.stringify(report, null, 2) + "\n";
    if (reportPath !== undefined) await writeOutput(reportPath, json, "--report");
    if (reportDir !== undefined) {
      await writeOutput(
        join(reportDir, `${point.mode}-${point.workers}w.json`),
        json,
        "--report-dir",
      );
    }
  }
  if (reportDir !== undefined) {
    await writeOutput(join(reportDir, "sweep.html"), sweepHtml(reports, points), "--report-dir");
  }
  return 0;
}

/** The points to run: router modes × worker counts (one point without a sweep). */
function sweepPoints(args: ParsedArgs): Point[] {
  const v = args.values;
  const modesText = v["sweep-router-modes"] as string | undefined;
  const workersText = v["sweep-workers"] as string | undefined;
  const modes = modesText === undefined ? [v["router-mode"] as RouterMode] : parseList(
    modesText,
    "--sweep-router-modes",
    `router modes from ${ROUTER_MODES.join(", ")}`,
    (item) => ROUTER_MODES.find((m) => m === item),
  );
  const workers = workersText === undefined ? [v["workers"] as number] : parseList(
    workersText,
    "--sweep-workers",
    `worker counts from 1 to ${MAX_SIM_WORKERS}`,
    (item) => {
      const n = Number(item);
      return /^\d+$/.test(item) && n >= 1 && n <= MAX_SIM_WORKERS ? n : undefined;
    },
  );
  return modes.flatMap((mode) => workers.map((n) => ({ mode, workers: n })));
}

/** Splits a comma-separated list of distinct items; `parse` answers undefined for a bad one. */
function parseList<T>(
  text: string,
  flag: string,
  expected: string,
  parse: (item: string) => T | undefined,
): T[] {
  const out: T[] = [];
  for (const item of text.split(",").map((s) => s.trim())) {
    const value = parse(item);
    const why = value === undefined
      ? `"${item}" is not valid; expected ${expected}, comma-separated`
      : out.includes(value)
      ? `"${item}" is repeated`
      : undefined;
    if (why !== undefined) throw new UsageError(`Invalid value for ${flag}: "${text}" (${why})`);
    out.push(value!);
  }
  if (out.length > 64) throw new UsageError(`Invalid value for ${flag}: more than 64 points`);
  return out;
}

async function loadWorkload(args: ParsedArgs): Promise<SimWorkload> {
  const v = args.values;
  const trace = v["trace"] as string | undefined;
  const concurrency = v["concurrency"] as number | undefined;
  const rate = v["request-rate"] as number | undefined;
  if (trace !== undefined) {
    const stray = [...SYNTHETIC_ONLY, "requests"].find((f) => args.explicit.has(f));
    if (stray !== undefined) {
      throw new UsageError(
        `Invalid flag --${stray} with --trace: it applies to synthetic workloads`,
      );
    }
    return await traceWorkloadOf(args, trace, concurrency);
  }
  for (const f of ["trace-block-size", "arrival-speedup", "max-requests"]) {
    if (args.explicit.has(f)) throw new UsageError(`Invalid flag --${f} without --trace`);
  }
  const sessions = v["requests"] as number | undefined;
  if (sessions === undefined) {
    throw new UsageError("Missing workload: give --trace FILE or --requests N");
  }
  if ((rate === undefined) === (concurrency === undefined)) {
    throw new UsageError(
      "Missing or conflicting load: give exactly one of --request-rate R and --concurrency C",
    );
  }
  return simWorkloadOf(syntheticWorkload({
    sessions,
    isl: distribution(args, "isl"),
    osl: distribution(args, "osl"),
    sharedPrefixRatio: v["shared-prefix-ratio"] as number,
    prefixGroups: v["prefix-groups"] as number,
    turns: v["turns"] as number,
    turnIsl: distribution(args, "turn-isl"),
    interTurnDelayMs: v["inter-turn-delay-ms"] as number,
    arrival: rate !== undefined
      ? { kind: "poisson", ratePerS: rate }
      : { kind: "closed", concurrency: concurrency! },
    vocabulary: SIM_PROMPT_VOCABULARY,
    seed: v["seed"] as number,
  }, syntheticDescription(args, sessions, rate, concurrency)));
}

async function traceWorkloadOf(
  args: ParsedArgs,
  path: string,
  concurrency: number | undefined,
): Promise<SimWorkload> {
  const v = args.values;
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new UsageError(`Invalid value for --trace: "${path}" (cannot read it: ${why})`);
  }
  let lines;
  try {
    lines = parseMooncakeTrace(text, basename(path));
  } catch (err) {
    if (err instanceof DynamoError) {
      throw new UsageError(`Invalid value for --trace: "${path}" (${err.message})`);
    }
    throw err;
  }
  if (lines.length === 0) throw new UsageError(`Invalid value for --trace: "${path}" (no lines)`);
  const blockSize = v["trace-block-size"] as number;
  const speedup = v["arrival-speedup"] as number;
  const maxRequests = v["max-requests"] as number | undefined;
  const mode: LoadMode = concurrency === undefined
    ? { kind: "open" }
    : { kind: "closed", concurrency };
  const n = Math.min(lines.length, maxRequests ?? lines.length);
  const notes = [
    `${n} requests`,
    `${blockSize}-token blocks`,
    ...(speedup === 1 ? [] : [`arrivals ×${speedup}`]),
    ...(concurrency === undefined ? [] : [`closed loop, concurrency ${concurrency}`]),
  ];
  return traceSimWorkload(lines, {
    blockSize,
    arrivalSpeedup: speedup,
    maxRequests,
    mode,
    description: `trace ${basename(path)} (${notes.join(", ")})`,
  });
}

function distribution(args: ParsedArgs, flag: string): Distribution {
  try {
    return parseDistribution(args.values[flag] as string, `--${flag}`);
  } catch (err) {
    if (err instanceof DynamoError) throw new UsageError(err.message);
    throw err;
  }
}

function syntheticDescription(
  args: ParsedArgs,
  sessions: number,
  rate: number | undefined,
  concurrency: number | undefined,
): string {
  const v = args.values;
  const turns = v["turns"] as number;
  const parts = [
    `${sessions} sessions × ${turns} turn${turns === 1 ? "" : "s"}`,
    `ISL ${v["isl"]}`,
    `OSL ${v["osl"]}`,
  ];
  if ((v["shared-prefix-ratio"] as number) > 0) {
    parts.push(`shared prefix ${v["shared-prefix-ratio"]} in ${v["prefix-groups"]} groups`);
  }
  if (turns > 1) parts.push(`turn ISL ${v["turn-isl"]}, think ${v["inter-turn-delay-ms"]} ms`);
  parts.push(rate !== undefined ? `Poisson ${rate} sessions/s` : `concurrency ${concurrency}`);
  return `synthetic: ${parts.join(", ")}`;
}

/** The settings behind a point, for the report's `config`. */
function reportConfig(
  args: ParsedArgs,
  point: Point,
  engine: MockerOptionsInput,
  kvRouter: KvRouterConfig,
): Record<string, unknown> {
  const workload: Record<string, unknown> = {};
  for (const f of WORKLOAD_FLAGS) {
    const value = args.values[f.name];
    if (value !== undefined && (args.explicit.has(f.name) || f.name === "trace-block-size")) {
      workload[f.name] = value;
    }
  }
  return {
    workers: point.workers,
    router_mode: point.mode,
    seed: args.values["seed"],
    ignore_eos: args.values["ignore-eos"],
    engine,
    ...(point.mode === "kv" ? { kv_router: kvRouter } : {}),
    workload,
  };
}

/** Fails before a long run, not after it, when an output path cannot be written. */
async function checkOutputs(
  reportPath: string | undefined,
  reportDir: string | undefined,
): Promise<void> {
  const fail = (flag: string, value: string, err: unknown): never => {
    const why = err instanceof Error ? err.message : String(err);
    throw new UsageError(`Invalid value for ${flag}: "${value}" (${why})`);
  };
  if (reportDir !== undefined) {
    await Deno.mkdir(reportDir, { recursive: true }).catch((e) =>
      fail("--report-dir", reportDir, e)
    );
  }
  if (reportPath !== undefined) {
    const dir = await Deno.stat(dirname(resolve(reportPath))).catch((e) =>
      fail("--report", reportPath, e)
    );
    if (!dir.isDirectory) fail("--report", reportPath, "its parent is not a directory");
  }
}

async function writeOutput(path: string, text: string, flag: string): Promise<void> {
  try {
    await Deno.writeTextFile(path, text);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new UsageError(`Invalid value for ${flag}: cannot write "${path}" (${why})`);
  }
  console.log(`Wrote ${path}`);
}

function sweepHtml(reports: Report[], points: Point[]): string {
  const oneMode = new Set(points.map((p) => p.mode)).size === 1;
  return renderHtml(reports, {
    title: `dynamo sim: ${reports[0]?.workload ?? ""}`,
    // Worker counts make a numeric axis only when one router mode is swept.
    ...(oneMode && points.length > 1
      ? { x: { label: "workers", valueOf: (r: Report) => r.config["workers"] as number } }
      : {}),
  });
}
