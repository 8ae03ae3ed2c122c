import { join } from "node:path";
import { stringify as toYaml } from "yaml";
import { DynamoError } from "../../errors/mod.ts";
import { checkOwnedFlags, type LaunchPorts, type LaunchSpec } from "../external/mod.ts";

/** Ports the worker picks for each launch of TensorRT-LLM. */
export const TRTLLM_PORT_NAMES = ["http", "kv_events"] as const;

/** The topic frame of TensorRT-LLM's KV event messages the worker asks for and subscribes to. */
export const TRTLLM_KV_EVENTS_TOPIC = "kv-events";

/** `KvCacheConfig.tokens_per_block`'s default (`tensorrt_llm/llmapi/llm_args.py`). */
export const TRTLLM_DEFAULT_TOKENS_PER_BLOCK = 32;

/**
 * `trtllm-serve`'s batch limits when the command line sets none: `BuildConfig`'s defaults
 * (`max_batch_size` 2048, `max_num_tokens` 8192), which `trtllm-serve` passes on.
 */
export const TRTLLM_DEFAULT_MAX_BATCH_SIZE = 2048;
export const TRTLLM_DEFAULT_MAX_NUM_TOKENS = 8192;

/** The file name of the LLM API options the worker writes for each launch. */
export const TRTLLM_OPTIONS_FILE = "extra_llm_api_options.yaml";

/** What the worker decides about a TensorRT-LLM launch; everything else is the user's. */
export interface TrtllmLaunchOptions {
  /** The resolved executable (`trtllm-serve` on PATH, or `--engine-bin`). */
  readonly executable: string;
  /** `trtllm-serve MODEL`: a Hugging Face id, a checkpoint folder or an engine folder. */
  readonly model: string;
  readonly blockSizeTokens: number;
  /** KV block reuse (`kv_cache_config.enable_block_reuse`), TensorRT-LLM's prefix caching. */
  readonly enablePrefixCaching: boolean;
  /** Ask TensorRT-LLM to publish KV events on ZMQ (needs block reuse and a recent version). */
  readonly kvEvents: boolean;
  /** `kv_cache_config.max_tokens`: the KV pool's size in tokens, when the worker sets it. */
  readonly kvCacheMaxTokens?: number;
  /** Folder the per-launch LLM API options file is written to. */
  readonly configDir: string;
  /** The user's own LLM API options (their `--extra_llm_api_options` file), merged under ours. */
  readonly baseLlmApiOptions?: Readonly<Record<string, unknown>>;
  /** Engine flags the worker maps from its own flags (`--max_seq_len N`, ...). */
  readonly engineFlags: readonly string[];
  /** Extra `trtllm-serve` arguments, forwarded untouched after the worker's. */
  readonly extraArgs: readonly string[];
}

/**
 * The LLM API options (`--extra_llm_api_options` YAML, `tensorrt_llm/llmapi/llm_args.py`)
 * of one launch: the user's, with what the worker needs set over them:
 * `kv_cache_config.enable_block_reuse` and `tokens_per_block`, `max_tokens` when given, and
 * `kv_events_config` (TensorRT-LLM's ZMQ KV event publisher, `ZmqEventPublisher`, which
 * binds its PUB socket and sends map-form events that Dynamo-style routers read); plus
 * `enable_iter_perf_stats` and `return_perf_metrics`, which make `trtllm-serve` collect
 * iteration stats into the Prometheus gauges of `/prometheus/metrics`
 * (`tensorrt_llm/metrics/collector.py`).
 */
export function trtllmLlmApiOptions(
  options: TrtllmLaunchOptions,
  ports: LaunchPorts,
): Record<string, unknown> {
  const base = options.baseLlmApiOptions ?? {};
  const baseKv = base["kv_cache_config"];
  const kv: Record<string, unknown> = {
    ...(baseKv !== null && typeof baseKv === "object" ? baseKv as Record<string, unknown> : {}),
    enable_block_reuse: options.enablePrefixCaching,
    tokens_per_block: options.blockSizeTokens,
  };
  if (options.kvCacheMaxTokens !== undefined) kv["max_tokens"] = options.kvCacheMaxTokens;
  delete kv["kv_events_config"];
  if (options.enablePrefixCaching && options.kvEvents) {
    kv["kv_events_config"] = {
      enable_kv_cache_events: true,
      publisher: "zmq",
      endpoint: `tcp://*:${ports["kv_events"]}`,
      topic: TRTLLM_KV_EVENTS_TOPIC,
    };
  }
  return {
    ...base,
    enable_iter_perf_stats: true,
    return_perf_metrics: true,
    kv_cache_config: kv,
  };
}

/**
 * The `trtllm-serve` command line of one launch (`tensorrt_llm/commands/serve.py`: the
 * `serve` command is the default of its command group): `trtllm-serve MODEL --host
 * 127.0.0.1 --port PORT --extra_llm_api_options FILE`, the file written just before.
 */
export function trtllmCommand(options: TrtllmLaunchOptions, ports: LaunchPorts): LaunchSpec {
  const file = join(options.configDir, TRTLLM_OPTIONS_FILE);
  const args = [
    options.model,
    "--host",
    "127.0.0.1",
    "--port",
    String(ports["http"]),
    "--extra_llm_api_options",
    file,
    ...options.engineFlags,
    ...options.extraArgs,
  ];
  return {
    argv: [options.executable, ...args],
    env: { PYTHONUNBUFFERED: "1" },
    files: { [file]: toYaml(trtllmLlmApiOptions(options, ports)) },
  };
}

/** Flags of `trtllm-serve` the worker sets itself, each with what to use instead. */
const OWNED_FLAGS: Readonly<Record<string, string>> = {
  "--host": "the worker always binds trtllm-serve to 127.0.0.1",
  "--port": "the worker picks a free port",
};

/**
 * Checks the extra `trtllm-serve` arguments: none may set a flag the worker owns (exit 2).
 * An `--extra_llm_api_options` / `--config` file is not refused: the worker merges it (see
 * `splitTrtllmOptionsFile`).
 */
export function checkTrtllmExtraArgs(extraArgs: readonly string[]): void {
  checkOwnedFlags("TensorRT-LLM", extraArgs, OWNED_FLAGS);
}

/**
 * Takes the user's `--extra_llm_api_options FILE` (or `--config FILE`) out of the extra
 * arguments: the worker reads that file and merges its own options over it, since
 * `trtllm-serve` reads only one such file.
 */
export function splitTrtllmOptionsFile(
  extraArgs: readonly string[],
): { extraArgs: string[]; optionsFile: string | undefined } {
  const out: string[] = [];
  let optionsFile: string | undefined;
  const names = ["--extra_llm_api_options", "--config"];
  for (let i = 0; i < extraArgs.length; i++) {
    const arg = extraArgs[i]!;
    const eq = arg.indexOf("=");
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    if (!names.includes(name)) {
      out.push(arg);
      continue;
    }
    const value = eq > 0 ? arg.slice(eq + 1) : extraArgs[++i];
    if (value === undefined) {
      throw new DynamoError(
        "invalid_request",
        "invalid_engine_flag",
        `Missing the file after ${name} for trtllm-serve`,
        { param: name },
      );
    }
    optionsFile = value;
  }
  return { extraArgs: out, optionsFile };
}
