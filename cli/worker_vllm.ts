import { basename, resolve } from "node:path";
import {
  checkVllmExtraArgs,
  createVllmEngine,
  type ExternalEngine,
  findExecutable,
  findModelDir,
  VLLM_DEFAULT_BLOCK_SIZE,
} from "../runtime/engines/mod.ts";
import type { FlagSpec, FlagValue, ParsedArgs } from "./flags.ts";
import { UsageError } from "./flags.ts";

/** Flags of `dynamo worker` for external engines (`--engine vllm`). */
export const EXTERNAL_ENGINE_FLAGS: readonly FlagSpec[] = [
  {
    name: "model",
    type: "string",
    valueName: "name",
    help:
      "vllm: the model the engine serves, a Hugging Face id or a local directory (default: --model-path)",
  },
  {
    name: "engine-bin",
    type: "string",
    valueName: "path",
    help: "vllm: the engine's executable (default: vllm, found on PATH)",
  },
  {
    name: "engine-args",
    type: "string",
    valueName: "args",
    help:
      "vllm: more `vllm serve` arguments, split at spaces ('...' and \"...\" quote); those after -- follow them",
  },
  {
    name: "gpu-memory-utilization",
    type: "number",
    min: 0,
    exclusiveMin: true,
    max: 1,
    help: "vllm: fraction of GPU memory vLLM may use (vLLM's flag; default: vLLM's, 0.9)",
  },
  {
    name: "engine-ready-timeout-secs",
    type: "number",
    default: 600,
    min: 0,
    exclusiveMin: true,
    help: "vllm: how long the engine may take to load and answer before it counts as failed",
  },
  {
    name: "engine-max-restarts",
    type: "int",
    default: 3,
    min: 0,
    max: 100,
    help: "vllm: engine failures tolerated within 10 minutes; one more and the worker exits 1",
  },
  {
    name: "engine-stop-timeout-secs",
    type: "number",
    default: 15,
    min: 0,
    help: "vllm: on shutdown, how long the engine gets between SIGTERM and SIGKILL",
  },
];

/** Mocker flags that are also `vllm serve` flags: with --engine vllm they are passed on. */
const PASSED_TO_VLLM: Readonly<Record<string, (value: FlagValue) => string[]>> = {
  "num-gpu-blocks-override": (v) => ["--num-gpu-blocks-override", String(v)],
  "max-num-seqs": (v) => ["--max-num-seqs", String(v)],
  "max-num-batched-tokens": (v) => ["--max-num-batched-tokens", String(v)],
  "context-length": (v) => ["--max-model-len", String(v)],
  "enable-chunked-prefill": (v) => [v ? "--enable-chunked-prefill" : "--no-enable-chunked-prefill"],
  "seed": (v) => ["--seed", String(v)],
};
/** Mocker flags the worker itself turns into vLLM flags (always passed). */
const OWNED_BY_WORKER = new Set(["block-size", "enable-prefix-caching"]);

/**
 * Checks that the flags given fit the engine: mocker-only flags (`--speedup-ratio`, ...) are
 * refused with --engine vllm, external-engine flags and arguments after `--` with
 * --engine mocker.
 */
export function checkEngineFlags(
  args: ParsedArgs,
  engine: string,
  mockerFlags: readonly FlagSpec[],
): void {
  if (engine === "mocker") {
    const wrong = EXTERNAL_ENGINE_FLAGS.find((f) => args.explicit.has(f.name));
    if (wrong !== undefined) {
      throw new UsageError(`--${wrong.name} applies to external engines (--engine vllm) only`);
    }
    if (args.rest.length > 0) {
      throw new UsageError(`Arguments after "--" are for external engines (--engine vllm) only`);
    }
    return;
  }
  for (const flag of [...mockerFlags.map((f) => f.name), "zmq-kv-events-port"]) {
    if (!args.explicit.has(flag) || flag in PASSED_TO_VLLM || OWNED_BY_WORKER.has(flag)) continue;
    throw new UsageError(`--${flag} applies to --engine mocker only`);
  }
}

/** A vLLM engine as the worker's flags describe it, and the model it serves. */
export interface VllmWorkerEngine {
  readonly engine: ExternalEngine;
  /** The engine (the worker's tokenizer is not needed: vLLM has its own). */
  makeEngine(): ExternalEngine;
  readonly modelName: string;
  /** What vLLM loads: a Hugging Face id or a directory (the card's source_path). */
  readonly model: string;
  /** Where tokenizer.json and tokenizer_config.json are. */
  readonly tokenizerDir: string;
}

/**
 * Builds the vLLM engine of `dynamo worker --engine vllm`: finds the executable (exit 2
 * naming it and the PATH searched when missing), the model's tokenizer folder, and maps the
 * worker's flags onto `vllm serve` flags. Nothing starts until the worker starts it.
 */
export async function vllmWorkerEngine(
  args: ParsedArgs,
  o: { loadIntervalMs: number },
): Promise<VllmWorkerEngine> {
  const modelFlag = args.values["model"] as string | undefined;
  const modelPathFlag = args.values["model-path"] as string | undefined;
  if (modelFlag === undefined && modelPathFlag === undefined) {
    throw new UsageError("Missing required flag --model (or --model-path) for --engine vllm");
  }
  const bin = args.values["engine-bin"] as string | undefined;
  const executable = findExecutable(bin ?? "vllm", {
    engine: "vllm",
    ...(bin === undefined ? {} : { flag: "--engine-bin" }),
  });
  const extraArgs = [
    ...splitArgs((args.values["engine-args"] as string | undefined) ?? ""),
    ...args.rest,
  ];
  checkVllmExtraArgs(extraArgs);
  const modelPath = modelPathFlag === undefined ? undefined : resolve(modelPathFlag);
  const model = modelFlag ?? modelPath!;
  const dir = await findModelDir(modelFlag, modelPath);
  const modelName = (args.values["model-name"] as string | undefined) ?? modelFlag ??
    basename(modelPath!);
  const engineFlags = Object.entries(PASSED_TO_VLLM).flatMap(([flag, toVllm]) =>
    args.explicit.has(flag) ? toVllm(args.values[flag]) : []
  );
  const memory = args.values["gpu-memory-utilization"] as number | undefined;
  if (memory !== undefined) engineFlags.push("--gpu-memory-utilization", String(memory));
  const engine = createVllmEngine({
    executable,
    model,
    servedModelName: modelName,
    blockSizeTokens: args.explicit.has("block-size")
      ? args.values["block-size"] as number
      : VLLM_DEFAULT_BLOCK_SIZE,
    enablePrefixCaching: args.values["enable-prefix-caching"] as boolean,
    engineFlags,
    extraArgs,
    ...(dir.maxPositionEmbeddings === undefined
      ? {}
      : { contextLengthFallback: dir.maxPositionEmbeddings }),
    loadIntervalMs: o.loadIntervalMs,
    policy: {
      readyTimeoutMs: (args.values["engine-ready-timeout-secs"] as number) * 1000,
      maxRestarts: args.values["engine-max-restarts"] as number,
      stopTimeoutMs: (args.values["engine-stop-timeout-secs"] as number) * 1000,
    },
  });
  return { engine, makeEngine: () => engine, modelName, model, tokenizerDir: dir.dir };
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
