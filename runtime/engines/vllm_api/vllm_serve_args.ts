import { DynamoError } from "../../errors/mod.ts";

/** vLLM's `KVEventsConfig` (`vllm/config/kv_events.py`), the fields the stand-in models. */
export interface KvEventsConfig {
  readonly enable_kv_cache_events: boolean;
  readonly publisher: string;
  readonly endpoint: string;
  readonly replay_endpoint: string | null;
  readonly buffer_steps: number;
  readonly hwm: number;
  readonly topic: string;
}

/** A `vllm serve MODEL [flags]` command line, as far as the stand-in models it. */
export interface VllmServeArgs {
  readonly model: string;
  readonly host: string;
  readonly port: number;
  /** What clients name the model; the model argument when not given. */
  readonly servedModelNames: readonly string[];
  /** Where the tokenizer files are; the model directory when not given. */
  readonly tokenizer: string | undefined;
  readonly maxModelLen: number | undefined;
  readonly blockSize: number;
  readonly enablePrefixCaching: boolean;
  readonly enableChunkedPrefill: boolean;
  readonly numGpuBlocksOverride: number | undefined;
  readonly maxNumSeqs: number | undefined;
  readonly maxNumBatchedTokens: number | undefined;
  readonly seed: number | undefined;
  readonly kvEventsConfig: KvEventsConfig | undefined;
  readonly enablePromptTokensDetails: boolean;
  /** Flags the stand-in accepted without modelling them. */
  readonly ignored: readonly string[];
}

type FlagKind = "string" | "int" | "bool" | "strings";

/** The flags the stand-in models, with vLLM's names and defaults (`vllm serve --help`). */
const FLAGS: Readonly<Record<string, FlagKind>> = {
  "--model": "string",
  "--host": "string",
  "--port": "int",
  "--served-model-name": "strings",
  "--tokenizer": "string",
  "--max-model-len": "int",
  "--block-size": "int",
  "--enable-prefix-caching": "bool",
  "--enable-chunked-prefill": "bool",
  "--num-gpu-blocks-override": "int",
  "--max-num-seqs": "int",
  "--max-num-batched-tokens": "int",
  "--seed": "int",
  "--kv-events-config": "string",
  "--enable-prompt-tokens-details": "bool",
};

/**
 * Boolean flags of `vllm serve` that the stand-in ignores; listed so that they never take
 * the next argument as their value. Any other unknown `--flag` takes the next argument as
 * its value unless that starts with `-`.
 */
const IGNORED_BOOLEANS = new Set([
  "--trust-remote-code",
  "--enforce-eager",
  "--disable-log-requests",
  "--enable-log-requests",
  "--disable-log-stats",
  "--disable-frontend-multiprocessing",
  "--enable-auto-tool-choice",
  "--disable-custom-all-reduce",
  "--enable-lora",
  "--enable-sleep-mode",
  "--disable-fastapi-docs",
  "--enable-force-include-usage",
  "--enable-server-load-tracking",
  "--return-tokens-as-token-ids",
  "--disable-uvicorn-access-log",
  "--enable-request-id-headers",
  "--headless",
  "--async-scheduling",
  "--skip-tokenizer-init",
]);

/**
 * Parses `serve MODEL [flags]` the way `vllm serve` reads it (argparse: `--flag value` or
 * `--flag=value`, the last occurrence wins, `--no-flag` for booleans, `--served-model-name`
 * takes one or more names). Flags it does not model are accepted and listed in `ignored`.
 * A bad value is an `invalid_request` error naming the flag.
 */
export function parseVllmServeArgs(argv: readonly string[]): VllmServeArgs {
  if (argv[0] !== "serve") {
    throw usage(`expected "serve MODEL [flags]" (vLLM's command line), got "${argv.join(" ")}"`);
  }
  const values = new Map<string, string | string[] | boolean>();
  const ignored: string[] = [];
  let model: string | undefined;
  for (let i = 1; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith("-")) {
      if (model !== undefined) throw usage(`unexpected argument "${arg}"`);
      model = arg;
      continue;
    }
    const eq = arg.indexOf("=");
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const inline = eq > 0 ? arg.slice(eq + 1) : undefined;
    const base = name.startsWith("--no-") ? `--${name.slice(5)}` : name;
    const kind = FLAGS[base];
    if (kind === "bool") {
      values.set(base, name === base);
      continue;
    }
    const takesValue = kind !== undefined ||
      (!IGNORED_BOOLEANS.has(name) && !name.startsWith("--no-"));
    const next = argv[i + 1];
    const value = inline ??
      (takesValue && next !== undefined && !next.startsWith("-") ? argv[++i] : undefined);
    if (kind === undefined) {
      ignored.push(value === undefined ? name : `${name} ${value}`);
      continue;
    }
    if (value === undefined) throw usage(`missing value for ${name}`);
    if (kind === "strings") {
      const names = [value];
      while (inline === undefined && argv[i + 1] !== undefined && !argv[i + 1]!.startsWith("-")) {
        names.push(argv[++i]!);
      }
      values.set(base, names);
    } else values.set(base, value);
  }
  model ??= values.get("--model") as string | undefined;
  if (model === undefined) throw usage("missing the model (vllm serve MODEL)");
  const served = values.get("--served-model-name") as string[] | undefined;
  return {
    model,
    host: (values.get("--host") as string | undefined) ?? "0.0.0.0",
    port: int(values, "--port", 0, 65535) ?? 8000,
    servedModelNames: served ?? [model],
    tokenizer: values.get("--tokenizer") as string | undefined,
    maxModelLen: int(values, "--max-model-len", 1),
    blockSize: int(values, "--block-size", 1) ?? 16,
    enablePrefixCaching: (values.get("--enable-prefix-caching") as boolean | undefined) ?? true,
    enableChunkedPrefill: (values.get("--enable-chunked-prefill") as boolean | undefined) ?? true,
    numGpuBlocksOverride: int(values, "--num-gpu-blocks-override", 1),
    maxNumSeqs: int(values, "--max-num-seqs", 1),
    maxNumBatchedTokens: int(values, "--max-num-batched-tokens", 1),
    seed: int(values, "--seed", -(2 ** 53)),
    kvEventsConfig: kvEventsConfig(values.get("--kv-events-config") as string | undefined),
    enablePromptTokensDetails:
      (values.get("--enable-prompt-tokens-details") as boolean | undefined) ?? false,
    ignored,
  };
}

function int(
  values: Map<string, unknown>,
  flag: string,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number | undefined {
  const raw = values.get(flag) as string | undefined;
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!/^-?\d+$/.test(raw) || n < min || n > max) {
    throw usage(`argument ${flag}: invalid int value: '${raw}'`);
  }
  return n;
}

/** `--kv-events-config` JSON, with `KVEventsConfig`'s defaults for what it leaves out. */
function kvEventsConfig(raw: string | undefined): KvEventsConfig | undefined {
  if (raw === undefined) return undefined;
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw usage(`argument --kv-events-config: not valid JSON: '${raw}'`);
  }
  const enabled = parsed["enable_kv_cache_events"] === true;
  return {
    enable_kv_cache_events: enabled,
    publisher: typeof parsed["publisher"] === "string"
      ? parsed["publisher"]
      : enabled
      ? "zmq"
      : "null",
    endpoint: typeof parsed["endpoint"] === "string" ? parsed["endpoint"] : "tcp://*:5557",
    replay_endpoint: typeof parsed["replay_endpoint"] === "string"
      ? parsed["replay_endpoint"]
      : null,
    buffer_steps: typeof parsed["buffer_steps"] === "number" ? parsed["buffer_steps"] : 10_000,
    hwm: typeof parsed["hwm"] === "number" ? parsed["hwm"] : 100_000,
    topic: typeof parsed["topic"] === "string" ? parsed["topic"] : "",
  };
}

function usage(message: string): DynamoError {
  return new DynamoError("invalid_request", "invalid_vllm_args", `vllm serve: ${message}`);
}
