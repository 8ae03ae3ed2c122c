import {
  checkVllmExtraArgs,
  createVllmEngine,
  type ExternalEngine,
  VLLM_DEFAULT_BLOCK_SIZE,
} from "../runtime/engines/mod.ts";
import type { FlagValue, ParsedArgs } from "./flags.ts";
import { externalWorkerBasics } from "./worker_external.ts";

// The flags and helpers every external engine shares, where earlier code imports them from.
export { checkEngineFlags, EXTERNAL_ENGINE_FLAGS, splitArgs } from "./worker_external.ts";

/** Mocker flags that are also `vllm serve` flags: with --engine vllm they are passed on. */
const PASSED_TO_VLLM: Readonly<Record<string, (value: FlagValue) => string[]>> = {
  "num-gpu-blocks-override": (v) => ["--num-gpu-blocks-override", String(v)],
  "max-num-seqs": (v) => ["--max-num-seqs", String(v)],
  "max-num-batched-tokens": (v) => ["--max-num-batched-tokens", String(v)],
  "context-length": (v) => ["--max-model-len", String(v)],
  "enable-chunked-prefill": (v) => [v ? "--enable-chunked-prefill" : "--no-enable-chunked-prefill"],
  "seed": (v) => ["--seed", String(v)],
};

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
  const b = await externalWorkerBasics(args, "vllm");
  checkVllmExtraArgs(b.extraArgs);
  const engineFlags = Object.entries(PASSED_TO_VLLM).flatMap(([flag, toVllm]) =>
    args.explicit.has(flag) ? toVllm(args.values[flag]) : []
  );
  const memory = args.values["gpu-memory-utilization"] as number | undefined;
  if (memory !== undefined) engineFlags.push("--gpu-memory-utilization", String(memory));
  const engine = createVllmEngine({
    executable: b.executable,
    model: b.model,
    servedModelName: b.modelName,
    blockSizeTokens: b.blockSizeTokens ?? VLLM_DEFAULT_BLOCK_SIZE,
    enablePrefixCaching: b.enablePrefixCaching,
    engineFlags,
    extraArgs: b.extraArgs,
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
  };
}
