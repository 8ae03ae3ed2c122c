import { createVllmStandIn, parseVllmServeArgs } from "../runtime/engines/mod.ts";
import { DynamoError } from "../runtime/errors/mod.ts";
import { Logger } from "../runtime/observability/mod.ts";
import { type Command, commandHelp, usageFailure } from "./command.ts";
import { COMMON_FLAGS, resolveCommon } from "./common.ts";
import { parseFlags, UsageError } from "./flags.ts";
import { MOCKER_FLAGS, type MockerFlagSpec, mockerOptions } from "./worker.ts";

const log = new Logger("vllm_api");

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
  summary: "Run the mocker as its own process, speaking an engine's API (a vLLM stand-in)",
  usage: "--api vllm [simulation flags] serve MODEL [vllm serve flags]",
  details: [
    "Serves what `vllm serve MODEL` serves, backed by the simulated engine, so a worker with",
    "--engine vllm runs without a GPU: GET /health, GET /v1/models, GET /metrics (vLLM's",
    "metric names), POST /v1/completions (token-id or text prompts, streamed or not,",
    "return_token_ids, usage with cached tokens, vLLM's 400s for bad input), and KV events",
    "on the ZMQ endpoint of --kv-events-config, in vLLM's wire format.",
    "",
    "vLLM flags it models: --host, --port, --served-model-name, --tokenizer, --max-model-len",
    "(default: config.json's max_position_embeddings), --block-size (16),",
    "--num-gpu-blocks-override, --max-num-seqs, --max-num-batched-tokens,",
    "--[no-]enable-prefix-caching, --[no-]enable-chunked-prefill, --seed,",
    "--kv-events-config, --enable-prompt-tokens-details. Any other flag is accepted and",
    "ignored (logged), as are options a worker never sends (chat, logprobs, batches). MODEL",
    "(or --tokenizer) must be a local folder with tokenizer.json.",
    "",
    "Example, an executable named vllm for tests:",
    '  #!/bin/sh\n  exec dynamo mocker --api vllm --speedup-ratio 10 "$@"',
  ].join("\n"),
  flags: [
    {
      name: "api",
      type: "string",
      choices: ["vllm"],
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
 * Runs `dynamo mocker ARGV`: the flags before `serve` are the mocker's own, everything from
 * `serve` on is a `vllm serve` command line (parsed leniently, as vLLM's). Stops on SIGTERM
 * or SIGINT: the HTTP server shuts down (bounded) and the engine stops.
 */
export async function runMocker(argv: readonly string[]): Promise<number> {
  const at = argv.indexOf("serve");
  const own = at < 0 ? argv : argv.slice(0, at);
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
    if (args.values["api"] === undefined) throw new UsageError("Missing required flag --api");
    if (at < 0) throw new UsageError('Missing the engine command line: "serve MODEL [flags]"');
    resolveCommon(args);
    const serve = parseVllmServeArgs(argv.slice(at));
    if (serve.ignored.length > 0) {
      log.info("Accepting and ignoring vLLM flags the stand-in does not model", {
        flags: serve.ignored.join(" "),
      });
    }
    const standIn = await createVllmStandIn(serve, mockerOptions(args, SIMULATION_FLAGS));
    return await serveStandIn(standIn, serve.host, serve.port);
  } catch (err) {
    if (err instanceof UsageError) return usageFailure("mocker", err.message);
    if (err instanceof DynamoError && err.errorClass === "invalid_request") {
      return usageFailure("mocker", err.message);
    }
    throw err;
  }
}

async function serveStandIn(
  standIn: Awaited<ReturnType<typeof createVllmStandIn>>,
  host: string,
  port: number,
): Promise<number> {
  // Not `shutdownSignal()`: a stand-in inherits its worker's DYN_PARENT_PID, which names the
  // worker's parent, not its own; its worker's watchdog takes care of orphans instead.
  let stop!: (why: string) => void;
  const stopped = new Promise<string>((resolve) => (stop = resolve));
  const handlers: [Deno.Signal, () => void][] = [
    ["SIGTERM", () => stop("SIGTERM")],
    ["SIGINT", () => stop("SIGINT")],
  ];
  for (const [sig, h] of handlers) Deno.addSignalListener(sig, h);
  try {
    // As vLLM: the HTTP server starts only once the engine is up.
    await standIn.engine.start();
    const server = Deno.serve({
      hostname: host,
      port,
      onListen: ({ hostname, port }) =>
        log.info("vLLM stand-in ready", {
          url: `http://${hostname}:${port}`,
          served_model_name: standIn.servedModelNames.join(","),
          max_model_len: standIn.maxModelLen,
          kv_events: standIn.engine.kvEventSource()?.endpoint ?? "off",
          pid: Deno.pid,
        }),
    }, standIn.app.fetch);
    const why = await stopped;
    log.info("Shutting down", { reason: why });
    // The engine first: its streams end ("abort"), so the server has nothing left to drain.
    await standIn.engine.stop();
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      server.shutdown(),
      new Promise((r) => (timer = setTimeout(r, 5_000))),
    ]);
    clearTimeout(timer);
    return 0;
  } finally {
    for (const [sig, h] of handlers) Deno.removeSignalListener(sig, h);
  }
}
