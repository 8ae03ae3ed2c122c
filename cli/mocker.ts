import type { Hono } from "hono";
import {
  createSglangStandIn,
  createTrtllmStandIn,
  createVllmStandIn,
  type MockerOptionsInput,
  parseSglangServerArgs,
  parseTrtllmServeArgs,
  parseVllmServeArgs,
} from "../runtime/engines/mod.ts";
import { DynamoError } from "../runtime/errors/mod.ts";
import { Logger } from "../runtime/observability/mod.ts";
import { type Command, commandHelp, usageFailure } from "./command.ts";
import { COMMON_FLAGS, resolveCommon } from "./common.ts";
import { parseFlags, UsageError } from "./flags.ts";
import { MOCKER_FLAGS, type MockerFlagSpec, mockerOptions } from "./worker.ts";

const log = new Logger("mocker");

/** The engine APIs `dynamo mocker` speaks. */
export const MOCKER_APIS = ["vllm", "sglang", "trtllm"] as const;

/** Mocker settings that are not vLLM flags: the simulation's own (given before `serve`). */
const SIMULATION_FLAGS: readonly MockerFlagSpec[] = MOCKER_FLAGS.filter((f) =>
  [
    "speedup-ratio",
    "decode-speedup-ratio",
    "mean-output-tokens",
    "startup-time",
    "preemption-mode",
    "max-waiting-requests",
    "num-gpu-blocks-override",
  ].includes(f.name)
);

export const mockerCommand: Command = {
  name: "mocker",
  summary:
    "Run the mocker as its own process, speaking an engine's API (a vLLM, SGLang or TensorRT-LLM stand-in)",
  usage: [
    "--api vllm [simulation flags] serve MODEL [vllm serve flags]",
    "       dynamo mocker --api sglang [simulation flags] -- serve --model-path MODEL [sglang flags]",
    "       dynamo mocker --api trtllm [simulation flags] -- MODEL [trtllm-serve flags]",
  ].join("\n"),
  details: [
    "Serves what the engine's server serves, backed by the simulated engine, so a worker with",
    '--engine vllm|sglang|trtllm runs without a GPU. The engine\'s command line follows "--"',
    '(or starts at "serve"); flags the stand-in does not model are accepted and ignored',
    "(logged). MODEL (or the tokenizer flag) must be a local folder with tokenizer.json, or a",
    "model id in the Hugging Face cache.",
    "",
    "--api vllm: GET /health, /v1/models, /metrics (vLLM's names), POST /v1/completions",
    "(token-id or text prompts, streamed or not, return_token_ids, usage with cached tokens,",
    "vLLM's 400s), KV events on the ZMQ endpoint of --kv-events-config in vLLM's wire format.",
    "Models --host, --port, --served-model-name, --tokenizer, --max-model-len, --block-size",
    "(16), --num-gpu-blocks-override, --max-num-seqs, --max-num-batched-tokens,",
    "--[no-]enable-prefix-caching, --[no-]enable-chunked-prefill, --seed, --kv-events-config,",
    "--enable-prompt-tokens-details.",
    "",
    "--api sglang: GET /health, /v1/models, /server_info (and /get_server_info), /metrics",
    "(SGLang's names, with --enable-metrics), POST /generate (input_ids or text; output_ids and",
    "meta_info with cached_tokens; cumulative, or incremental with",
    "--incremental-streaming-output), KV events per --kv-events-config. Models --model-path,",
    "--tokenizer-path, --host, --port, --served-model-name, --page-size (1), --context-length,",
    "--max-running-requests, --max-total-tokens, --chunked-prefill-size, --max-prefill-tokens,",
    "--disable-radix-cache, --enable-metrics, --kv-events-config, --random-seed.",
    "",
    "--api trtllm: GET /health, /health_generate, /v1/models, /prometheus/metrics (iteration",
    "gauges, with return_perf_metrics), /metrics (iteration stats), POST /v1/completions",
    "(detokenize: false for token ids, usage with cached tokens), KV events from",
    "kv_cache_config.kv_events_config in TensorRT-LLM's map form. Models --host, --port,",
    "--tokenizer, --max_batch_size, --max_num_tokens, --max_seq_len, --enable_chunked_prefill",
    "and the --extra_llm_api_options YAML (kv_cache_config.enable_block_reuse, tokens_per_block,",
    "max_tokens, kv_events_config; enable_iter_perf_stats, return_perf_metrics, ...).",
    "",
    "Example, an executable named sglang for tests:",
    '  #!/bin/sh\n  exec dynamo mocker --api sglang --speedup-ratio 10 -- "$@"',
  ].join("\n"),
  flags: [
    {
      name: "api",
      type: "string",
      choices: MOCKER_APIS,
      help: "The engine API to speak (required)",
    },
    ...SIMULATION_FLAGS.map(({ option: _o, scale: _s, ...flag }) => flag),
    ...COMMON_FLAGS.filter((f) => f.name === "log-level"),
  ],
  run(): Promise<number> {
    throw new Error("dynamo mocker is run by runMocker");
  },
};

/**
 * Runs `dynamo mocker ARGV`: the flags before `--` (or before `serve`) are the mocker's own,
 * the rest is the engine's command line (parsed leniently, as the engine would). Stops on
 * SIGTERM or SIGINT: the HTTP server shuts down (bounded) and the engine stops.
 */
export async function runMocker(argv: readonly string[]): Promise<number> {
  const sep = argv.indexOf("--");
  const at = sep >= 0 ? sep : argv.indexOf("serve");
  const own = at < 0 ? argv : argv.slice(0, at);
  const engineArgv = at < 0 ? [] : argv.slice(sep >= 0 ? sep + 1 : at);
  let args;
  try {
    args = parseFlags(mockerCommand.flags, own);
  } catch (err) {
    if (err instanceof UsageError) return usageFailure("mocker", err.message);
    throw err;
  }
  if (args.help) {
    console.log(commandHelp(mockerCommand));
    return 0;
  }
  try {
    const api = args.values["api"] as typeof MOCKER_APIS[number] | undefined;
    if (api === undefined) throw new UsageError("Missing required flag --api");
    if (at < 0) throw new UsageError('Missing the engine command line after "--"');
    resolveCommon(args);
    const standIn = await buildStandIn(api, engineArgv, mockerOptions(args, SIMULATION_FLAGS));
    return await serveStandIn(standIn);
  } catch (err) {
    if (err instanceof UsageError) return usageFailure("mocker", err.message);
    if (err instanceof DynamoError && err.errorClass === "invalid_request") {
      return usageFailure("mocker", err.message);
    }
    throw err;
  }
}

/** A stand-in server to run: its engine's lifecycle, its app and where to bind it. */
interface RunnableStandIn {
  readonly label: string;
  readonly app: Hono;
  readonly host: string;
  readonly port: number;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** What the ready line reports. */
  describe(): Record<string, unknown>;
}

async function buildStandIn(
  api: typeof MOCKER_APIS[number],
  argv: readonly string[],
  mocker: MockerOptionsInput,
): Promise<RunnableStandIn> {
  const ignoring = (what: string, ignored: readonly string[]) => {
    if (ignored.length > 0) {
      log.info(`Accepting and ignoring ${what} the stand-in does not model`, {
        flags: ignored.join(" "),
      });
    }
  };
  if (api === "sglang") {
    const a = parseSglangServerArgs(argv);
    ignoring("SGLang flags", a.ignored);
    const s = await createSglangStandIn(a, mocker);
    return {
      label: "SGLang",
      app: s.app,
      host: a.host,
      port: a.port,
      start: async () => void await s.engine.start(),
      stop: () => s.engine.stop(),
      describe: () => ({
        served_model_name: s.servedModelName,
        context_length: s.contextLength,
        kv_events: s.engine.kvEventSource()?.endpoint ?? "off",
      }),
    };
  }
  if (api === "trtllm") {
    const a = await parseTrtllmServeArgs(argv);
    ignoring("trtllm-serve flags", a.ignored);
    const s = await createTrtllmStandIn(a, mocker);
    // trtllm-serve binds "localhost" by default; loopback is what that means here.
    const host = a.host === "localhost" ? "127.0.0.1" : a.host;
    return {
      label: "TensorRT-LLM",
      app: s.app,
      host,
      port: a.port,
      start: () => s.start(),
      stop: () => s.stop(),
      describe: () => ({
        model: s.modelName,
        max_seq_len: s.maxSeqLen,
        kv_events: s.kvEventsEndpoint() ?? "off",
      }),
    };
  }
  const a = parseVllmServeArgs(argv);
  ignoring("vLLM flags", a.ignored);
  const s = await createVllmStandIn(a, mocker);
  return {
    label: "vLLM",
    app: s.app,
    host: a.host,
    port: a.port,
    start: async () => void await s.engine.start(),
    stop: () => s.engine.stop(),
    describe: () => ({
      served_model_name: s.servedModelNames.join(","),
      max_model_len: s.maxModelLen,
      kv_events: s.engine.kvEventSource()?.endpoint ?? "off",
    }),
  };
}

async function serveStandIn(standIn: RunnableStandIn): Promise<number> {
  // Not `shutdownSignal()`: a stand-in inherits its worker's DYN_PARENT_PID, which names the
  // worker's parent, not its own; its worker's watchdog takes care of orphans instead.
  let stop!: (why: string) => void;
  const stopped = new Promise<string>((resolve) => (stop = resolve));
  const handlers: [Deno.Signal, () => void][] = [
    ["SIGTERM", () => stop("SIGTERM")],
    ["SIGINT", () => stop("SIGINT")],
  ];
  // Never removed: as with `shutdownSignal()`, removing them would restore the default
  // action, and a repeated SIGTERM late in the shutdown would kill us by signal.
  for (const [sig, h] of handlers) Deno.addSignalListener(sig, h);
  // As the engines: the HTTP server starts only once the engine is up.
  await standIn.start();
  const server = Deno.serve({
    hostname: standIn.host,
    port: standIn.port,
    onListen: ({ hostname, port }) =>
      log.info(`${standIn.label} stand-in ready`, {
        url: `http://${hostname}:${port}`,
        ...standIn.describe(),
        pid: Deno.pid,
      }),
  }, standIn.app.fetch);
  const why = await stopped;
  log.info("Shutting down", { reason: why });
  // The engine first: its streams end ("abort"), so the server has nothing left to drain.
  await standIn.stop();
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    server.shutdown(),
    new Promise((r) => (timer = setTimeout(r, 5_000))),
  ]);
  clearTimeout(timer);
  return 0;
}
