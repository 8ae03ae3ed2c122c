import { DynamoError } from "../../errors/mod.ts";
import type { LaunchPorts, LaunchSpec } from "../external/mod.ts";

/** Ports the worker picks for each launch of vLLM. */
export const VLLM_PORT_NAMES = ["http", "kv_events", "kv_replay", "nixl_side_channel"] as const;

/** The topic frame of vLLM's KV event messages the worker asks for and subscribes to. */
export const VLLM_KV_EVENTS_TOPIC = "kv-events";

/** vLLM's `--block-size` default on CUDA (`vllm/config/cache.py`). */
export const VLLM_DEFAULT_BLOCK_SIZE = 16;

/** What the worker decides about a vLLM launch; everything else is the user's extra args. */
export interface VllmLaunchOptions {
  /** The resolved executable (`vllm` on PATH, or `--engine-bin`). */
  readonly executable: string;
  /** `vllm serve MODEL`: a Hugging Face id or a local directory. */
  readonly model: string;
  readonly servedModelName: string;
  readonly blockSizeTokens: number;
  readonly enablePrefixCaching: boolean;
  /** Engine flags the worker maps from its own flags (`--max-model-len N`, ...). */
  readonly engineFlags: readonly string[];
  /** Extra `vllm serve` arguments, forwarded untouched after the worker's. */
  readonly extraArgs: readonly string[];
}

/**
 * The `vllm serve` command line of one launch. Flag names as vLLM's `serve` subcommand
 * defines them: `--host`, `--port`, `--enable-prompt-tokens-details` in
 * `vllm/entrypoints/openai/cli_args.py` (FrontendArgs); `--served-model-name`,
 * `--block-size`, `--enable-prefix-caching`, `--kv-events-config` in
 * `vllm/engine/arg_utils.py` (EngineArgs). The KV events JSON has the fields of
 * `KVEventsConfig` (`vllm/config/kv_events.py`): vLLM binds its PUB and replay ROUTER
 * sockets because the endpoints contain `*` (`vllm/distributed/kv_events.py`), and the
 * worker subscribes on loopback. `VLLM_NIXL_SIDE_CHANNEL_PORT` (`vllm/envs.py`) reserves a
 * per-worker port for NIXL's handshake, for disaggregated serving later.
 */
export function vllmCommand(options: VllmLaunchOptions, ports: LaunchPorts): LaunchSpec {
  const args = [
    "serve",
    options.model,
    "--host",
    "127.0.0.1",
    "--port",
    String(ports["http"]),
    "--served-model-name",
    options.servedModelName,
    "--block-size",
    String(options.blockSizeTokens),
    // vLLM reports usage.prompt_tokens_details.cached_tokens only with this flag.
    "--enable-prompt-tokens-details",
  ];
  if (options.enablePrefixCaching) {
    args.push(
      "--enable-prefix-caching",
      "--kv-events-config",
      JSON.stringify({
        enable_kv_cache_events: true,
        publisher: "zmq",
        endpoint: `tcp://*:${ports["kv_events"]}`,
        replay_endpoint: `tcp://*:${ports["kv_replay"]}`,
        topic: VLLM_KV_EVENTS_TOPIC,
      }),
    );
  } else args.push("--no-enable-prefix-caching");
  args.push(...options.engineFlags, ...options.extraArgs);
  return {
    argv: [options.executable, ...args],
    env: {
      VLLM_NIXL_SIDE_CHANNEL_PORT: String(ports["nixl_side_channel"]),
      // Python buffers a pipe's output; the worker's log should see lines as they happen.
      PYTHONUNBUFFERED: "1",
    },
  };
}

/**
 * Flags of `vllm serve` the worker sets itself: given again in the extra args they would
 * silently win (argparse keeps the last), and the worker would wait on the wrong port or
 * route with the wrong block size. Each maps to what to use instead.
 */
const OWNED_FLAGS: Readonly<Record<string, string>> = {
  "--host": "the worker always binds vLLM to 127.0.0.1",
  "--port": "the worker picks a free port",
  "--served-model-name": "use --model-name",
  "--block-size": "use --block-size of dynamo worker",
  "--enable-prefix-caching": "use --[no-]enable-prefix-caching of dynamo worker",
  "--no-enable-prefix-caching": "use --no-enable-prefix-caching of dynamo worker",
  "--kv-events-config": "the worker configures KV events on ports it picks",
  "--enable-prompt-tokens-details": "the worker always sets it",
  "--disable-log-stats": "the worker reads load and KV capacity from vLLM's /metrics",
  "--data-parallel-size": "one worker runs one vLLM engine (data parallel size 1)",
  "-dp": "one worker runs one vLLM engine (data parallel size 1)",
};

/**
 * Checks the extra `vllm serve` arguments: none may set a flag the worker owns. Throws
 * `invalid_request` (exit 2) naming the flag and what to do instead.
 */
export function checkVllmExtraArgs(extraArgs: readonly string[]): void {
  for (const arg of extraArgs) {
    const flag = arg.split("=", 1)[0]!;
    const instead = OWNED_FLAGS[flag];
    if (instead !== undefined) {
      throw new DynamoError(
        "invalid_request",
        "engine_flag_owned",
        `Cannot pass ${flag} to vLLM after "--": ${instead}`,
        { param: flag },
      );
    }
  }
}

/** The value of `--flag V` or `--flag=V` in `args` (the last one, as argparse keeps). */
export function vllmFlagValue(args: readonly string[], flag: string): string | undefined {
  let value: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === flag && i + 1 < args.length) value = args[++i];
    else if (arg.startsWith(`${flag}=`)) value = arg.slice(flag.length + 1);
  }
  return value;
}

/**
 * vLLM's batch limits when none are given, for `vllm serve` on a GPU with at least 70 GiB
 * that is not an A100 (H100, H200, MI300X): `EngineArgs.get_batch_defaults` in
 * `vllm/engine/arg_utils.py` (smaller GPUs get 256 and 2048). vLLM does not export them, so
 * the worker reports these unless the flags set them.
 */
export const VLLM_DEFAULT_MAX_NUM_SEQS = 1024;
export const VLLM_DEFAULT_MAX_NUM_BATCHED_TOKENS = 8192;

/** The batch limits a vLLM command line sets (the last occurrence wins), else vLLM's defaults. */
export function vllmBatchLimits(
  args: readonly string[],
): { maxNumSeqs: number; maxNumBatchedTokens: number } {
  const int = (flag: string, fallback: number): number => {
    const raw = vllmFlagValue(args, flag);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isSafeInteger(n) || n < 1) {
      throw new DynamoError(
        "invalid_request",
        "invalid_engine_flag",
        `Invalid value for vLLM's ${flag}: "${raw}" (expected a positive integer)`,
        { param: flag },
      );
    }
    return n;
  };
  return {
    maxNumSeqs: int("--max-num-seqs", VLLM_DEFAULT_MAX_NUM_SEQS),
    maxNumBatchedTokens: int("--max-num-batched-tokens", VLLM_DEFAULT_MAX_NUM_BATCHED_TOKENS),
  };
}
