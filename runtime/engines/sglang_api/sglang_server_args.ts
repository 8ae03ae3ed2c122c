import {
  argvError,
  boolArg,
  type FlagKind,
  intArg,
  parseEngineArgv,
  stringArg,
} from "../stand_in/mod.ts";

const ENGINE = "sglang serve";

/** SGLang's `KVEventsConfig` (`sglang/srt/disaggregation/kv_events.py`), as modelled. */
export interface SglangKvEventsConfig {
  readonly publisher: string;
  readonly endpoint: string;
  readonly replay_endpoint: string | null;
  readonly buffer_steps: number;
  readonly topic: string;
}

/** An SGLang server command line, as far as the stand-in models it. */
export interface SglangServerArgs {
  readonly modelPath: string;
  readonly tokenizerPath: string | undefined;
  readonly host: string;
  readonly port: number;
  /** What clients name the model; the model path when not given. */
  readonly servedModelName: string;
  readonly pageSize: number;
  readonly contextLength: number | undefined;
  readonly maxRunningRequests: number | undefined;
  readonly maxTotalTokens: number | undefined;
  /** -1 disables chunked prefill. */
  readonly chunkedPrefillSize: number | undefined;
  readonly maxPrefillTokens: number;
  readonly disableRadixCache: boolean;
  readonly enableMetrics: boolean;
  readonly kvEventsConfig: SglangKvEventsConfig | undefined;
  readonly randomSeed: number | undefined;
  /** `output_ids` and `text` of streamed chunks hold only what is new. */
  readonly incrementalStreamingOutput: boolean;
  /** Flags the stand-in accepted without modelling them. */
  readonly ignored: readonly string[];
}

/** The flags the stand-in models, with SGLang's names (`ServerArgs.add_cli_args`). */
const FLAGS: Readonly<Record<string, readonly [string, FlagKind]>> = {
  "--model-path": ["--model-path", "string"],
  "--model": ["--model-path", "string"],
  "--tokenizer-path": ["--tokenizer-path", "string"],
  "--host": ["--host", "string"],
  "--port": ["--port", "int"],
  "--served-model-name": ["--served-model-name", "string"],
  "--page-size": ["--page-size", "int"],
  "--context-length": ["--context-length", "int"],
  "--max-running-requests": ["--max-running-requests", "int"],
  "--max-total-tokens": ["--max-total-tokens", "int"],
  "--chunked-prefill-size": ["--chunked-prefill-size", "int"],
  "--max-prefill-tokens": ["--max-prefill-tokens", "int"],
  "--disable-radix-cache": ["--disable-radix-cache", "bool"],
  "--enable-metrics": ["--enable-metrics", "bool"],
  "--kv-events-config": ["--kv-events-config", "string"],
  "--random-seed": ["--random-seed", "int"],
  "--incremental-streaming-output": ["--incremental-streaming-output", "bool"],
  // The older name of the same behaviour.
  "--stream-output": ["--incremental-streaming-output", "bool"],
};

/** SGLang's store_true flags the stand-in ignores (they never take a value). */
const IGNORED_BOOLEANS = new Set([
  "--trust-remote-code",
  "--skip-server-warmup",
  "--enable-cache-report",
  "--disable-cuda-graph",
  "--enable-torch-compile",
  "--log-requests",
  "--enable-mixed-chunk",
  "--enable-dp-attention",
  "--disable-overlap-schedule",
  "--enable-hierarchical-cache",
  "--show-time-cost",
  "--disable-custom-all-reduce",
  "--enable-deterministic-inference",
  "--enable-lora",
  "--is-embedding",
  "--skip-tokenizer-init",
]);

/**
 * Parses an SGLang server command line: `serve [MODEL] [flags]` (`sglang serve`), or
 * `-m sglang.launch_server [flags]` / just the flags (`python -m sglang.launch_server`).
 * Flags it does not model are accepted and listed in `ignored`. A bad value is an
 * `invalid_request` error naming the flag.
 */
export function parseSglangServerArgs(argv: readonly string[]): SglangServerArgs {
  let rest = [...argv];
  if (rest[0] === "-m" && rest[1] === "sglang.launch_server") rest = rest.slice(2);
  else if (rest[0] === "serve") rest = rest.slice(1);
  const parsed = parseEngineArgv(rest, {
    engine: ENGINE,
    flags: FLAGS,
    ignoredBooleans: IGNORED_BOOLEANS,
  });
  if (parsed.positionals.length > 1) {
    throw argvError(ENGINE, `unexpected argument "${parsed.positionals[1]}"`);
  }
  const modelPath = parsed.positionals[0] ?? stringArg(parsed, "--model-path");
  if (modelPath === undefined) throw argvError(ENGINE, "missing --model-path");
  const int = (flag: string, min: number, max?: number) => intArg(parsed, ENGINE, flag, min, max);
  return {
    modelPath,
    tokenizerPath: stringArg(parsed, "--tokenizer-path"),
    host: stringArg(parsed, "--host") ?? "127.0.0.1",
    port: int("--port", 0, 65535) ?? 30000,
    servedModelName: stringArg(parsed, "--served-model-name") ?? modelPath,
    pageSize: int("--page-size", 1) ?? 1,
    contextLength: int("--context-length", 1),
    maxRunningRequests: int("--max-running-requests", 1),
    maxTotalTokens: int("--max-total-tokens", 1),
    chunkedPrefillSize: int("--chunked-prefill-size", -1),
    maxPrefillTokens: int("--max-prefill-tokens", 1) ?? 16_384,
    disableRadixCache: boolArg(parsed, "--disable-radix-cache", false),
    enableMetrics: boolArg(parsed, "--enable-metrics", false),
    kvEventsConfig: kvEventsConfig(stringArg(parsed, "--kv-events-config")),
    randomSeed: int("--random-seed", -(2 ** 53)),
    incrementalStreamingOutput: boolArg(parsed, "--incremental-streaming-output", false),
    ignored: parsed.ignored,
  };
}

/** `--kv-events-config` JSON, with `KVEventsConfig`'s defaults for what it leaves out. */
function kvEventsConfig(raw: string | undefined): SglangKvEventsConfig | undefined {
  if (raw === undefined) return undefined;
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw argvError(ENGINE, `argument --kv-events-config: not valid JSON: '${raw}'`);
  }
  const text = (key: string, fallback: string): string =>
    typeof parsed[key] === "string" ? parsed[key] as string : fallback;
  return {
    publisher: text("publisher", "null"),
    endpoint: text("endpoint", "tcp://*:5557"),
    replay_endpoint: typeof parsed["replay_endpoint"] === "string"
      ? parsed["replay_endpoint"]
      : null,
    buffer_steps: typeof parsed["buffer_steps"] === "number" ? parsed["buffer_steps"] : 10_000,
    topic: text("topic", ""),
  };
}
