import { basename } from "node:path";
import { checkOwnedFlags, type LaunchPorts, type LaunchSpec } from "../external/mod.ts";

/** Ports the worker picks for each launch of SGLang. */
export const SGLANG_PORT_NAMES = ["http", "kv_events", "kv_replay"] as const;

/** The topic frame of SGLang's KV event messages the worker asks for and subscribes to. */
export const SGLANG_KV_EVENTS_TOPIC = "kv-events";

/**
 * The page size the worker asks SGLang for unless told otherwise. SGLang's own default is 1
 * (`--page-size`, `sglang/srt/server_args.py`), which would make every token a KV block and
 * every cached token a router event; Dynamo's SGLang examples pass 16 (or 64).
 */
export const SGLANG_DEFAULT_PAGE_SIZE = 16;

/** What the worker decides about an SGLang launch; everything else is the user's extra args. */
export interface SglangLaunchOptions {
  /** The resolved executable: `sglang` (on PATH, or `--engine-bin`), or a Python interpreter. */
  readonly executable: string;
  /** `--model-path`: a Hugging Face id or a local directory. */
  readonly model: string;
  readonly servedModelName: string;
  readonly pageSizeTokens: number;
  readonly enablePrefixCaching: boolean;
  /** Ask SGLang to publish KV events (needs prefix caching); off: the router must approximate. */
  readonly kvEvents: boolean;
  /** Engine flags the worker maps from its own flags (`--context-length N`, ...). */
  readonly engineFlags: readonly string[];
  /** Extra SGLang server arguments, forwarded untouched after the worker's. */
  readonly extraArgs: readonly string[];
}

/** `python3` or `python3.12`: launch SGLang's module rather than its `sglang` CLI. */
function isPython(executable: string): boolean {
  return /^python(\d+(\.\d+)*)?$/.test(basename(executable));
}

/**
 * The SGLang server command line of one launch: `sglang serve --model-path MODEL ...`
 * (`sglang/cli/serve.py`, the recommended entry point), or `python -m sglang.launch_server
 * ...` when the executable is a Python interpreter (older SGLang). Flag names as
 * `ServerArgs.add_cli_args` (`sglang/srt/server_args.py`) defines them: `--host`, `--port`,
 * `--served-model-name`, `--page-size`, `--enable-metrics` (Prometheus `/metrics`),
 * `--disable-radix-cache` (prefix caching off), and `--kv-events-config`, whose JSON has the
 * fields of `KVEventsConfig` (`sglang/srt/disaggregation/kv_events.py`): SGLang's
 * `ZmqEventPublisher` binds its PUB and replay ROUTER sockets because the endpoints contain
 * `*`, and the worker subscribes on loopback.
 */
export function sglangCommand(options: SglangLaunchOptions, ports: LaunchPorts): LaunchSpec {
  const entry = isPython(options.executable) ? ["-m", "sglang.launch_server"] : ["serve"];
  const args = [
    ...entry,
    "--model-path",
    options.model,
    "--host",
    "127.0.0.1",
    "--port",
    String(ports["http"]),
    "--served-model-name",
    options.servedModelName,
    "--page-size",
    String(options.pageSizeTokens),
    // The worker reads load from /metrics, which SGLang serves only with this flag.
    "--enable-metrics",
  ];
  if (!options.enablePrefixCaching) args.push("--disable-radix-cache");
  else if (options.kvEvents) {
    args.push(
      "--kv-events-config",
      JSON.stringify({
        publisher: "zmq",
        endpoint: `tcp://*:${ports["kv_events"]}`,
        replay_endpoint: `tcp://*:${ports["kv_replay"]}`,
        topic: SGLANG_KV_EVENTS_TOPIC,
      }),
    );
  }
  args.push(...options.engineFlags, ...options.extraArgs);
  return {
    argv: [options.executable, ...args],
    // Python buffers a pipe's output; the worker's log should see lines as they happen.
    env: { PYTHONUNBUFFERED: "1" },
  };
}

/** Flags of the SGLang server the worker sets itself, each with what to use instead. */
const OWNED_FLAGS: Readonly<Record<string, string>> = {
  "--model-path": "use --model (or --model-path) of dynamo worker",
  "--model": "use --model (or --model-path) of dynamo worker",
  "--host": "the worker always binds SGLang to 127.0.0.1",
  "--port": "the worker picks a free port",
  "--served-model-name": "use --model-name",
  "--page-size": "use --block-size of dynamo worker",
  "--kv-events-config": "the worker configures KV events on ports it picks",
  "--enable-metrics": "the worker always sets it",
  "--disable-radix-cache": "use --no-enable-prefix-caching of dynamo worker",
  "--skip-tokenizer-init":
    "the worker sends min_new_tokens, which SGLang applies with its tokenizer",
  "--dp-size": "one worker runs one SGLang engine (data parallel size 1)",
  "--dp": "one worker runs one SGLang engine (data parallel size 1)",
  "--data-parallel-size": "one worker runs one SGLang engine (data parallel size 1)",
};

/** Checks the extra SGLang arguments: none may set a flag the worker owns (exit 2). */
export function checkSglangExtraArgs(extraArgs: readonly string[]): void {
  checkOwnedFlags("SGLang", extraArgs, OWNED_FLAGS);
}
