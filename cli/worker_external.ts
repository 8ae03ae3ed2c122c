import { basename, resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import {
  checkSglangExtraArgs,
  checkTrtllmExtraArgs,
  createSglangEngine,
  createTrtllmEngine,
  type ExternalEngine,
  findExecutable,
  findModelDir,
  lastFlagValue,
  type ModelDir,
  SGLANG_DEFAULT_PAGE_SIZE,
  splitTrtllmOptionsFile,
  type SupervisionPolicy,
  TRTLLM_DEFAULT_TOKENS_PER_BLOCK,
} from "../runtime/engines/mod.ts";
import { Logger } from "../runtime/observability/mod.ts";
import type { FlagSpec, FlagValue, ParsedArgs } from "./flags.ts";
import { UsageError } from "./flags.ts";

const log = new Logger("worker");

/** Engines a worker runs as a supervised process of their own. */
export const EXTERNAL_ENGINES = ["vllm", "sglang", "trtllm"] as const;
export type ExternalEngineKind = typeof EXTERNAL_ENGINES[number];

/** Each external engine's executable when `--engine-bin` is not given. */
export const ENGINE_EXECUTABLES: Readonly<Record<ExternalEngineKind, string>> = {
  vllm: "vllm",
  sglang: "sglang",
  trtllm: "trtllm-serve",
};

/** Flags of `dynamo worker` for external engines (`--engine vllm|sglang|trtllm`). */
export const EXTERNAL_ENGINE_FLAGS: readonly FlagSpec[] = [
  {
    name: "model",
    type: "string",
    valueName: "name",
    help:
      "External engines: the model the engine serves, a Hugging Face id or a local directory (default: --model-path)",
  },
  {
    name: "engine-bin",
    type: "string",
    valueName: "path",
    help:
      "External engines: the engine's executable (default: vllm, sglang or trtllm-serve, found on PATH)",
  },
  {
    name: "engine-args",
    type: "string",
    valueName: "args",
    help:
      "External engines: more engine arguments, split at spaces ('...' and \"...\" quote); those after -- follow them",
  },
  {
    name: "gpu-memory-utilization",
    type: "number",
    min: 0,
    exclusiveMin: true,
    max: 1,
    help:
      "External engines: fraction of GPU memory the engine may use (vLLM's flag; SGLang's --mem-fraction-static, TensorRT-LLM's --kv_cache_free_gpu_memory_fraction)",
  },
  {
    name: "engine-kv-events",
    type: "boolean",
    default: true,
    help:
      "sglang, trtllm: have the engine publish KV events for KV-aware routing; off: the frontend must route with --no-router-kv-events",
  },
  {
    name: "engine-ready-timeout-secs",
    type: "number",
    default: 600,
    min: 0,
    exclusiveMin: true,
    help:
      "External engines: how long the engine may take to load and answer before it counts as failed",
  },
  {
    name: "engine-max-restarts",
    type: "int",
    default: 3,
    min: 0,
    max: 100,
    help:
      "External engines: engine failures tolerated within 10 minutes; one more and the worker exits 1",
  },
  {
    name: "engine-stop-timeout-secs",
    type: "number",
    default: 15,
    min: 0,
    help: "External engines: on shutdown, how long the engine gets between SIGTERM and SIGKILL",
  },
];

/** Mocker flags the worker itself turns into engine flags for every external engine. */
const OWNED_BY_WORKER = new Set(["block-size", "enable-prefix-caching"]);

/** Mocker flags each external engine takes (mapped onto its own flags). */
const MAPPED: Readonly<Record<ExternalEngineKind, ReadonlySet<string>>> = {
  vllm: new Set([
    "num-gpu-blocks-override",
    "max-num-seqs",
    "max-num-batched-tokens",
    "context-length",
    "enable-chunked-prefill",
    "seed",
  ]),
  sglang: new Set([
    "num-gpu-blocks-override",
    "max-num-seqs",
    "max-num-batched-tokens",
    "context-length",
    "enable-chunked-prefill",
    "seed",
  ]),
  // trtllm-serve has no server-wide seed.
  trtllm: new Set([
    "num-gpu-blocks-override",
    "max-num-seqs",
    "max-num-batched-tokens",
    "context-length",
    "enable-chunked-prefill",
  ]),
};

/**
 * Checks that the flags given fit the engine: mocker-only flags (`--speedup-ratio`, ...) are
 * refused with an external engine, external-engine flags and arguments after `--` with
 * --engine mocker, and flags an engine has no equivalent for with that engine.
 */
export function checkEngineFlags(
  args: ParsedArgs,
  engine: string,
  mockerFlags: readonly FlagSpec[],
): void {
  if (engine === "mocker") {
    const wrong = EXTERNAL_ENGINE_FLAGS.find((f) => args.explicit.has(f.name));
    if (wrong !== undefined) {
      throw new UsageError(
        `--${wrong.name} applies to external engines (--engine vllm|sglang|trtllm) only`,
      );
    }
    if (args.rest.length > 0) {
      throw new UsageError(
        `Arguments after "--" are for external engines (--engine vllm|sglang|trtllm) only`,
      );
    }
    return;
  }
  const kind = engine as ExternalEngineKind;
  if (kind === "vllm" && args.explicit.has("engine-kv-events")) {
    throw new UsageError(
      "--engine-kv-events applies to --engine sglang|trtllm (vLLM publishes KV events whenever prefix caching is on)",
    );
  }
  for (const flag of [...mockerFlags.map((f) => f.name), "zmq-kv-events-port"]) {
    if (!args.explicit.has(flag) || MAPPED[kind].has(flag) || OWNED_BY_WORKER.has(flag)) continue;
    const mockerOnly = Object.values(MAPPED).every((set) => !set.has(flag));
    throw new UsageError(
      mockerOnly
        ? `--${flag} applies to --engine mocker only`
        : `--${flag} does not apply to --engine ${kind}`,
    );
  }
}

/** What every external engine's worker resolves the same way. */
export interface ExternalWorkerBasics {
  readonly executable: string;
  /** What the engine loads: a Hugging Face id or a directory (the card's source_path). */
  readonly model: string;
  readonly modelName: string;
  readonly dir: ModelDir;
  readonly extraArgs: string[];
  readonly blockSizeTokens: number | undefined;
  readonly enablePrefixCaching: boolean;
  readonly policy: Partial<SupervisionPolicy>;
}

/**
 * Resolves what every external engine needs: the executable (exit 2 naming it and the PATH
 * searched when missing), the model and its tokenizer folder, the served name, the extra
 * engine arguments (`--engine-args`, then those after `--`) and the supervision policy.
 */
export async function externalWorkerBasics(
  args: ParsedArgs,
  engine: ExternalEngineKind,
): Promise<ExternalWorkerBasics> {
  const modelFlag = args.values["model"] as string | undefined;
  const modelPathFlag = args.values["model-path"] as string | undefined;
  if (modelFlag === undefined && modelPathFlag === undefined) {
    throw new UsageError(`Missing required flag --model (or --model-path) for --engine ${engine}`);
  }
  const bin = args.values["engine-bin"] as string | undefined;
  const executable = findExecutable(bin ?? ENGINE_EXECUTABLES[engine], {
    engine,
    ...(bin === undefined ? {} : { flag: "--engine-bin" }),
  });
  const extraArgs = [
    ...splitArgs((args.values["engine-args"] as string | undefined) ?? ""),
    ...args.rest,
  ];
  const modelPath = modelPathFlag === undefined ? undefined : resolve(modelPathFlag);
  const dir = await findModelDir(modelFlag, modelPath);
  return {
    executable,
    model: modelFlag ?? modelPath!,
    modelName: (args.values["model-name"] as string | undefined) ?? modelFlag ??
      basename(modelPath!),
    dir,
    extraArgs,
    blockSizeTokens: args.explicit.has("block-size")
      ? args.values["block-size"] as number
      : undefined,
    enablePrefixCaching: args.values["enable-prefix-caching"] as boolean,
    policy: {
      readyTimeoutMs: (args.values["engine-ready-timeout-secs"] as number) * 1000,
      maxRestarts: args.values["engine-max-restarts"] as number,
      stopTimeoutMs: (args.values["engine-stop-timeout-secs"] as number) * 1000,
    },
  };
}

/** An external engine as the worker's flags describe it, and the model it serves. */
export interface ExternalWorkerEngine {
  readonly engine: ExternalEngine;
  /** The engine (the worker's tokenizer is not needed: the engine has its own). */
  makeEngine(): ExternalEngine;
  readonly modelName: string;
  readonly model: string;
  /** Where tokenizer.json and tokenizer_config.json are. */
  readonly tokenizerDir: string;
  /** Cleans up what the worker made for the engine (TensorRT-LLM's options folder). */
  dispose?(): Promise<void>;
}

/** Worker flags given explicitly, mapped onto engine flags by `map`. */
function mapFlags(
  args: ParsedArgs,
  map: Readonly<Record<string, (value: FlagValue) => string[]>>,
): string[] {
  return Object.entries(map).flatMap(([flag, to]) =>
    args.explicit.has(flag) ? to(args.values[flag]) : []
  );
}

/** Logs, once, that the router cannot follow this worker's cache from events. */
function warnNoKvEvents(engine: string, why: string): void {
  log.warn(
    `${engine} publishes no KV events (${why}): run the frontend with --router-mode kv --no-router-kv-events (approximate KV routing), or another router mode`,
  );
}

/**
 * Builds the SGLang engine of `dynamo worker --engine sglang`: `sglang serve` (or `python -m
 * sglang.launch_server` when --engine-bin is a Python interpreter) with the worker's flags
 * mapped onto SGLang's: --block-size as --page-size (default 16), --num-gpu-blocks-override
 * as --max-total-tokens (blocks x page size), --max-num-seqs as --max-running-requests,
 * --max-num-batched-tokens as --chunked-prefill-size (or --max-prefill-tokens with chunked
 * prefill off, which is --chunked-prefill-size -1), --context-length, --seed as
 * --random-seed, --gpu-memory-utilization as --mem-fraction-static.
 */
export async function sglangWorkerEngine(
  args: ParsedArgs,
  o: { loadIntervalMs: number },
): Promise<ExternalWorkerEngine> {
  const b = await externalWorkerBasics(args, "sglang");
  checkSglangExtraArgs(b.extraArgs);
  const page = b.blockSizeTokens ?? SGLANG_DEFAULT_PAGE_SIZE;
  const chunked = args.values["enable-chunked-prefill"] as boolean;
  const engineFlags = mapFlags(args, {
    "num-gpu-blocks-override": (v) => ["--max-total-tokens", String((v as number) * page)],
    "max-num-seqs": (v) => ["--max-running-requests", String(v)],
    "max-num-batched-tokens": (v) => [
      chunked ? "--chunked-prefill-size" : "--max-prefill-tokens",
      String(v),
    ],
    "context-length": (v) => ["--context-length", String(v)],
    "enable-chunked-prefill": (v) => v ? [] : ["--chunked-prefill-size", "-1"],
    "seed": (v) => ["--random-seed", String(v)],
    "gpu-memory-utilization": (v) => ["--mem-fraction-static", String(v)],
  });
  const kvEvents = args.values["engine-kv-events"] as boolean;
  if (!b.enablePrefixCaching) warnNoKvEvents("SGLang", "prefix caching is off");
  else if (!kvEvents) warnNoKvEvents("SGLang", "--no-engine-kv-events");
  const engine = createSglangEngine({
    executable: b.executable,
    model: b.model,
    servedModelName: b.modelName,
    pageSizeTokens: page,
    enablePrefixCaching: b.enablePrefixCaching,
    kvEvents,
    engineFlags,
    extraArgs: b.extraArgs,
    loadIntervalMs: o.loadIntervalMs,
    policy: b.policy,
  });
  return {
    engine,
    makeEngine: () => engine,
    modelName: b.modelName,
    model: b.model,
    tokenizerDir: b.dir.dir,
  };
}

/**
 * Builds the TensorRT-LLM engine of `dynamo worker --engine trtllm`: `trtllm-serve MODEL`
 * with LLM API options the worker writes (merged over the user's own
 * `--extra_llm_api_options` file, if given after `--`): --block-size as
 * `kv_cache_config.tokens_per_block` (default 32), --[no-]enable-prefix-caching as
 * `enable_block_reuse`, --num-gpu-blocks-override as `max_tokens` (blocks x block size), KV
 * events, iteration metrics; and flags: --max-num-seqs as --max_batch_size,
 * --max-num-batched-tokens as --max_num_tokens, --context-length as --max_seq_len,
 * --enable-chunked-prefill as --enable_chunked_prefill, --gpu-memory-utilization as
 * --kv_cache_free_gpu_memory_fraction.
 */
export async function trtllmWorkerEngine(
  args: ParsedArgs,
  o: { loadIntervalMs: number },
): Promise<ExternalWorkerEngine> {
  const b = await externalWorkerBasics(args, "trtllm");
  const split = splitTrtllmOptionsFile(b.extraArgs);
  checkTrtllmExtraArgs(split.extraArgs);
  const base = split.optionsFile === undefined ? undefined : await readYaml(split.optionsFile);
  const block = b.blockSizeTokens ?? TRTLLM_DEFAULT_TOKENS_PER_BLOCK;
  const engineFlags = mapFlags(args, {
    "max-num-seqs": (v) => ["--max_batch_size", String(v)],
    "max-num-batched-tokens": (v) => ["--max_num_tokens", String(v)],
    "context-length": (v) => ["--max_seq_len", String(v)],
    "enable-chunked-prefill": (v) => v ? ["--enable_chunked_prefill"] : [],
    "gpu-memory-utilization": (v) => ["--kv_cache_free_gpu_memory_fraction", String(v)],
  });
  const seqLenGiven = engineFlags.includes("--max_seq_len") ||
    lastFlagValue(split.extraArgs, "--max_seq_len") !== undefined;
  if (!seqLenGiven && b.dir.maxPositionEmbeddings === undefined) {
    throw new UsageError(
      `Cannot tell TensorRT-LLM's context length: pass --context-length N (trtllm-serve reports none, and ${b.dir.dir} has no config.json with max_position_embeddings)`,
    );
  }
  const kvEvents = args.values["engine-kv-events"] as boolean;
  if (!b.enablePrefixCaching) warnNoKvEvents("TensorRT-LLM", "block reuse is off");
  else if (!kvEvents) warnNoKvEvents("TensorRT-LLM", "--no-engine-kv-events");
  const configDir = await Deno.makeTempDir({ prefix: "dynamo-trtllm-" });
  const blocks = args.explicit.has("num-gpu-blocks-override")
    ? args.values["num-gpu-blocks-override"] as number
    : undefined;
  const engine = createTrtllmEngine({
    executable: b.executable,
    model: b.model,
    blockSizeTokens: block,
    enablePrefixCaching: b.enablePrefixCaching,
    kvEvents,
    ...(blocks === undefined ? {} : { kvCacheMaxTokens: blocks * block }),
    configDir,
    ...(base === undefined ? {} : { baseLlmApiOptions: base }),
    engineFlags,
    extraArgs: split.extraArgs,
    ...(b.dir.maxPositionEmbeddings === undefined
      ? {}
      : { contextLengthFallback: b.dir.maxPositionEmbeddings }),
    loadIntervalMs: o.loadIntervalMs,
    policy: b.policy,
  });
  return {
    engine,
    makeEngine: () => engine,
    modelName: b.modelName,
    model: b.model,
    tokenizerDir: b.dir.dir,
    dispose: () => Deno.remove(configDir, { recursive: true }).catch(() => {}),
  };
}

async function readYaml(path: string): Promise<Record<string, unknown>> {
  let raw: unknown;
  try {
    raw = parseYaml(await Deno.readTextFile(path));
  } catch (err) {
    throw new UsageError(
      `Cannot read the LLM API options file ${path}: ${err instanceof Error ? err.message : err}`,
    );
  }
  if (raw === null || raw === undefined) return {};
  if (typeof raw !== "object" || Array.isArray(raw)) {
    throw new UsageError(`Invalid LLM API options file ${path}: expected a YAML mapping`);
  }
  return raw as Record<string, unknown>;
}

/** Splits a command line at whitespace; '...' and "..." group, without escapes. */
export function splitArgs(text: string): string[] {
  const out: string[] = [];
  const re = /"([^"]*)"|'([^']*)'|([^\s"']+)/g;
  let current: string | undefined;
  let lastEnd = -1;
  for (const m of text.matchAll(re)) {
    const piece = m[1] ?? m[2] ?? m[3]!;
    // Adjacent pieces (--x="a b") belong to one argument.
    if (current !== undefined && m.index === lastEnd) current += piece;
    else {
      if (current !== undefined) out.push(current);
      current = piece;
    }
    lastEnd = m.index! + m[0].length;
  }
  if (current !== undefined) out.push(current);
  return out;
}
