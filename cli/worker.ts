import { basename, resolve } from "node:path";
import { ENV } from "../runtime/config/mod.ts";
import { FileDiscovery } from "../runtime/discovery/mod.ts";
import {
  buildMockerVocabulary,
  type Engine,
  MockerEngine,
  type MockerOptionsInput,
  resolveMockerOptions,
} from "../runtime/engines/mod.ts";
import { DynamoError } from "../runtime/errors/mod.ts";
import { ModelTokenizer } from "../runtime/llm/mod.ts";
import { Logger } from "../runtime/observability/mod.ts";
import { WorkerRoleHandle } from "../runtime/worker/mod.ts";
import { deferred, systemClock } from "../runtime/util/mod.ts";
import type { Command } from "./command.ts";
import { COMMON_FLAGS, requestPlaneLimits, resolveCommon, shutdownSignal } from "./common.ts";
import type { FlagSpec, ParsedArgs } from "./flags.ts";
import { UsageError } from "./flags.ts";
import {
  checkEngineFlags,
  EXTERNAL_ENGINE_FLAGS,
  sglangWorkerEngine,
  trtllmWorkerEngine,
} from "./worker_external.ts";
import { vllmWorkerEngine } from "./worker_vllm.ts";

const log = new Logger("worker");

/** Engines `dynamo worker` can run today. */
export const WORKER_ENGINES = ["mocker", "vllm", "sglang", "trtllm"] as const;

/** A mocker flag and the option it sets (its value multiplied by `scale`, if given). */
export type MockerFlagSpec = FlagSpec & { option: keyof MockerOptionsInput; scale?: number };

/** The mocker's flags, named as Dynamo's mocker names them, and the option each sets. */
export const MOCKER_FLAGS: readonly MockerFlagSpec[] = [
  {
    name: "num-gpu-blocks-override",
    option: "numGpuBlocks",
    type: "int",
    default: 16384,
    min: 1,
    max: 1 << 24,
    help: "KV cache capacity in blocks",
  },
  {
    name: "block-size",
    option: "blockSizeTokens",
    type: "int",
    default: 64,
    min: 1,
    max: 4096,
    help: "Tokens per KV block",
  },
  {
    name: "max-num-seqs",
    option: "maxNumSeqs",
    type: "int",
    default: 256,
    min: 1,
    max: 1 << 16,
    help: "Most requests in a batch",
  },
  {
    name: "max-num-batched-tokens",
    option: "maxNumBatchedTokens",
    type: "int",
    default: 8192,
    min: 1,
    max: 1 << 24,
    help: "Token budget of one forward pass",
  },
  {
    name: "enable-prefix-caching",
    option: "enablePrefixCaching",
    type: "boolean",
    default: true,
    help: "Reuse cached KV blocks for shared prefixes",
  },
  {
    name: "enable-chunked-prefill",
    option: "enableChunkedPrefill",
    type: "boolean",
    default: true,
    help: "Split long prompts across passes",
  },
  {
    name: "preemption-mode",
    option: "preemptionMode",
    type: "string",
    default: "lifo",
    choices: ["lifo", "fifo"],
    help: "Which request yields its KV blocks under pressure",
  },
  {
    name: "speedup-ratio",
    option: "speedupRatio",
    type: "number",
    default: 1,
    min: 0,
    exclusiveMin: true,
    help: "Divides simulated time (10 = ten times faster than the model)",
  },
  {
    name: "decode-speedup-ratio",
    option: "decodeSpeedupRatio",
    type: "number",
    default: 1,
    min: 0,
    exclusiveMin: true,
    help: "Further divides decode time",
  },
  {
    name: "context-length",
    option: "contextLengthTokens",
    type: "int",
    default: 40960,
    min: 1,
    max: 1 << 24,
    help: "Longest prompt + output, in tokens",
  },
  {
    name: "mean-output-tokens",
    option: "meanOutputTokens",
    type: "number",
    default: 128,
    min: 1,
    help: "Mean natural answer length when EOS is not ignored",
  },
  {
    name: "seed",
    option: "seed",
    type: "int",
    default: 0,
    help: "Seed for outputs of requests without their own seed",
  },
  {
    name: "startup-time",
    option: "startupTimeMs",
    type: "number",
    default: 0,
    min: 0,
    scale: 1000,
    help: "Seconds the engine takes to become ready",
  },
  {
    name: "max-waiting-requests",
    option: "maxWaitingRequests",
    type: "int",
    default: 4096,
    min: 1,
    max: 1 << 20,
    help: "Queued requests beyond this are refused (overloaded)",
  },
];

export const workerCommand: Command = {
  name: "worker",
  summary: "Run one engine instance and serve it on the request plane",
  usage: [
    "--engine mocker --model-path DIR [--model-name NAME] [engine flags]",
    "       dynamo worker --engine vllm|sglang|trtllm --model NAME [--model-path DIR] [--engine-bin PATH] [-- engine args]",
  ].join("\n"),
  details: [
    "The worker registers its endpoint and model card in discovery once its engine is ready,",
    "publishes its load on the event plane, and on SIGTERM deregisters, drains in-flight",
    "requests (bounded by --drain-timeout-secs) and exits.",
    "",
    "With --engine vllm, sglang or trtllm the worker runs the engine's server (`vllm serve`,",
    "`sglang serve`, `trtllm-serve`) as a supervised child process on ports it picks, with",
    "KV events, prefix caching, --block-size (default 16 for vllm and sglang, 32 for trtllm)",
    "and cached-token usage; --num-gpu-blocks-override, --max-num-seqs,",
    "--max-num-batched-tokens, --context-length, --[no-]enable-chunked-prefill and --seed are",
    "mapped onto the engine's own flags, and arguments after -- go to the engine untouched. If",
    "the engine exits, the worker deregisters, restarts it with backoff and registers again",
    "once it is ready.",
    "",
    "Example: dynamo worker --engine mocker --model-path ./models/qwen3 --model-name Qwen/Qwen3-0.6B",
    "Example: dynamo worker --engine vllm --model Qwen/Qwen3-0.6B -- --gpu-memory-utilization 0.85",
    "Example: dynamo worker --engine sglang --model Qwen/Qwen3-0.6B -- --mem-fraction-static 0.8",
    "Example: dynamo worker --engine trtllm --model Qwen/Qwen3-0.6B",
  ].join("\n"),
  flags: [
    {
      name: "engine",
      type: "string",
      default: "mocker",
      choices: WORKER_ENGINES,
      help: "Inference engine",
    },
    {
      name: "model-path",
      type: "string",
      valueName: "dir",
      help:
        "Model directory with tokenizer.json and tokenizer_config.json (required for the mocker)",
    },
    {
      name: "model-name",
      type: "string",
      valueName: "name",
      help: "Served model name (default: the model directory's name)",
    },
    { name: "role", type: "string", default: "agg", choices: ["agg"], help: "Worker role" },
    { name: "component", type: "string", default: "backend", help: "Discovery component name" },
    { name: "endpoint", type: "string", default: "generate", help: "Request-plane endpoint name" },
    {
      name: "rpc-host",
      type: "string",
      default: "127.0.0.1",
      env: ENV.tcpRpcHost,
      valueName: "host",
      help:
        'Address to bind and advertise for the request and event planes; "auto" picks this host\'s first non-loopback IPv4 (use a routable address for multi-node)',
    },
    {
      name: "rpc-port",
      type: "int",
      default: 0,
      min: 0,
      max: 65535,
      env: ENV.tcpRpcPort,
      help: "Request-plane port (0 = any free port)",
    },
    {
      name: "load-interval-ms",
      type: "int",
      default: 500,
      min: 10,
      help: "How often to publish load on the event plane",
    },
    {
      name: "drain-timeout-secs",
      type: "number",
      default: 30,
      min: 0,
      help: "On SIGTERM, how long in-flight requests may finish",
    },
    ...MOCKER_FLAGS.map(({ option: _o, scale: _s, ...flag }) => flag as FlagSpec),
    {
      name: "zmq-kv-events-port",
      type: "int",
      default: 0,
      min: 0,
      max: 65535,
      help: "Mocker: port it publishes KV events on, in vLLM's ZMQ format (0 = any free port)",
    },
    ...EXTERNAL_ENGINE_FLAGS,
    ...COMMON_FLAGS,
  ],
  async run(args) {
    const common = resolveCommon(args);
    const engineKind = args.values["engine"] as string;
    checkEngineFlags(args, engineKind, MOCKER_FLAGS);
    const loadIntervalMs = args.values["load-interval-ms"] as number;
    const served = engineKind === "vllm"
      ? await vllmWorkerEngine(args, { loadIntervalMs })
      : engineKind === "sglang"
      ? await sglangWorkerEngine(args, { loadIntervalMs })
      : engineKind === "trtllm"
      ? await trtllmWorkerEngine(args, { loadIntervalMs })
      : mockerEngine(args);
    const dispose = (served as { dispose?: () => Promise<void> }).dispose;
    try {
      return await serveWorker(args, served, { common, loadIntervalMs });
    } finally {
      await dispose?.();
    }
  },
};

/** Runs the worker role around `served`'s engine until a shutdown signal or the engine fails. */
async function serveWorker(
  args: ParsedArgs,
  served: {
    modelName: string;
    model: string;
    tokenizerDir: string;
    makeEngine: (tokenizer: ModelTokenizer) => Engine;
  },
  o: { common: ReturnType<typeof resolveCommon>; loadIntervalMs: number },
): Promise<number> {
  const { common, loadIntervalMs } = o;
  const tokenizer = await ModelTokenizer.load(served.tokenizerDir);
  const engine = served.makeEngine(tokenizer);
  const discovery = await FileDiscovery.open({ rootDir: common.discoveryDir });
  const signal = shutdownSignal();
  // An external engine that keeps failing after the worker started: stop and exit 1.
  const failed = deferred<string>();
  let failure: Error | undefined;
  const stopFailureWatch = engine.onAvailability?.((change) => {
    if (change.state !== "failed") return;
    failure = change.error;
    failed.resolve("engine failed");
  });
  let worker: WorkerRoleHandle;
  try {
    worker = await WorkerRoleHandle.start({
      discovery,
      engine,
      clock: systemClock,
      eosTokenIds: tokenizer.eosTokenIds,
    }, {
      namespace: common.namespace,
      component: args.values["component"] as string,
      endpoint: args.values["endpoint"] as string,
      modelName: served.modelName,
      modelPath: served.model,
      tokenizerDir: served.tokenizerDir,
      role: "agg",
      ...hosts(args.values["rpc-host"] as string),
      maxFrameBytes: requestPlaneLimits().maxFrameBytes,
      port: args.values["rpc-port"] as number,
      loadIntervalMs,
      drainTimeoutMs: (args.values["drain-timeout-secs"] as number) * 1000,
    });
  } catch (err) {
    stopFailureWatch?.();
    await engine.stop();
    await discovery.close();
    signal.dispose();
    throw err;
  }
  const why = await Promise.race([signal.promise, failed.promise]);
  log.info("Stopping", { reason: why });
  stopFailureWatch?.();
  await worker.shutdown();
  await discovery.close();
  signal.dispose();
  if (failure !== undefined) throw failure;
  return 0;
}

/** The mocker as `dynamo worker --engine mocker` flags describe it. */
function mockerEngine(args: ParsedArgs): {
  modelName: string;
  model: string;
  tokenizerDir: string;
  makeEngine: (tokenizer: ModelTokenizer) => Engine;
} {
  const modelPathArg = args.values["model-path"] as string | undefined;
  if (modelPathArg === undefined) throw new UsageError("Missing required flag --model-path");
  const modelPath = resolve(modelPathArg);
  const options = mockerOptions(args);
  const rpcHost = hosts(args.values["rpc-host"] as string).host;
  const zmqHost = rpcHost === "0.0.0.0" || rpcHost === "::" ? "127.0.0.1" : rpcHost;
  return {
    modelName: (args.values["model-name"] as string | undefined) ?? basename(modelPath),
    model: modelPath,
    tokenizerDir: modelPath,
    makeEngine: (tokenizer) =>
      new MockerEngine({
        options,
        // The mocker publishes its cache changes in vLLM's ZMQ format, and the worker
        // subscribes to them exactly as it would to a real vLLM.
        zmqKvEvents: {
          endpoint: `tcp://${zmqHost}:${args.values["zmq-kv-events-port"] as number}`,
          replayEndpoint: `tcp://${zmqHost}:0`,
        },
        vocabulary: buildMockerVocabulary(
          (text) => tokenizer.encode(text, { addSpecialTokens: false }),
          [...tokenizer.eosTokenIds],
        ),
      }),
  };
}

/** Resolves the mocker flags among `flags` into engine options; a bad value is a UsageError. */
export function mockerOptions(
  args: ParsedArgs,
  flags: readonly MockerFlagSpec[] = MOCKER_FLAGS,
): MockerOptionsInput {
  const input: Record<string, unknown> = {};
  for (const f of flags) {
    const value = args.values[f.name];
    if (value !== undefined) {
      input[f.option] = typeof value === "number" && f.scale ? value * f.scale : value;
    }
  }
  try {
    return resolveMockerOptions(input as MockerOptionsInput);
  } catch (err) {
    if (err instanceof DynamoError) throw new UsageError(err.message);
    throw err;
  }
}

/**
 * Where to bind and what to advertise: `auto` binds and advertises this host's first
 * non-loopback IPv4; a wildcard (0.0.0.0, ::) binds everywhere and advertises that address;
 * anything else is used for both.
 */
function hosts(value: string): { host: string; advertiseHost: string } {
  if (value === "auto") return { host: firstIPv4(), advertiseHost: firstIPv4() };
  if (value === "0.0.0.0" || value === "::") return { host: value, advertiseHost: firstIPv4() };
  return { host: value, advertiseHost: value };
}

function firstIPv4(): string {
  const iface = Deno.networkInterfaces().find((i) =>
    i.family === "IPv4" && !i.address.startsWith("127.")
  );
  if (iface === undefined) {
    throw new UsageError(
      "Invalid value for --rpc-host: this host has no non-loopback IPv4 address to advertise",
    );
  }
  return iface.address;
}
