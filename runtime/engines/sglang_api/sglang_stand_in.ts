import type { Hono } from "hono";
import { DynamoError } from "../../errors/mod.ts";
import type { MockerEngine, MockerOptionsInput } from "../mocker/mod.ts";
import { createStandInMocker } from "../stand_in/mod.ts";
import { createSglangApiApp } from "./sglang_api_app.ts";
import type { SglangServerArgs } from "./sglang_server_args.ts";

/** An SGLang stand-in, built and not yet started: start `engine`, then serve `app`. */
export interface SglangStandIn {
  readonly engine: MockerEngine;
  readonly app: Hono;
  readonly contextLength: number;
  readonly servedModelName: string;
}

/**
 * What an SGLang server sizes itself to when its flags do not say: `max_running_requests`
 * (SGLang derives it from memory) and `chunked_prefill_size` (8192 on large GPUs).
 */
const DEFAULT_MAX_RUNNING_REQUESTS = 1024;
const DEFAULT_CHUNKED_PREFILL_SIZE = 8192;

/**
 * Builds a stand-in for SGLang's server from its command line: the mocker simulates the
 * engine, configured from SGLang's flags (`--page-size` as the block size,
 * `--max-total-tokens` as the KV pool, `--max-running-requests`, `--chunked-prefill-size`
 * (-1: no chunked prefill, `--max-prefill-tokens` is the budget), `--context-length`,
 * `--disable-radix-cache`, `--random-seed`) over `mocker` (the simulation's own settings),
 * publishing KV events as `--kv-events-config` says, through the project's publisher of
 * vLLM's ZMQ format, which SGLang's publisher copies (framing, seq, replay protocol).
 */
export async function createSglangStandIn(
  args: SglangServerArgs,
  mocker: MockerOptionsInput = {},
): Promise<SglangStandIn> {
  const chunked = args.chunkedPrefillSize ?? DEFAULT_CHUNKED_PREFILL_SIZE;
  const kv = args.kvEventsConfig;
  const publish = kv !== undefined && kv.publisher === "zmq" && !args.disableRadixCache;
  if (publish && !bindsEndpoint(kv.endpoint)) {
    throw new DynamoError(
      "invalid_request",
      "kv_events_connect",
      `Cannot publish KV events on ${kv.endpoint}: SGLang connects to such an endpoint instead of binding it, which the stand-in does not model (use tcp://*:PORT)`,
    );
  }
  const maxRunning = args.maxRunningRequests ?? DEFAULT_MAX_RUNNING_REQUESTS;
  const sim = await createStandInMocker({
    model: args.modelPath,
    tokenizer: args.tokenizerPath,
    tokenizerFlag: "--tokenizer-path",
    mocker,
    engine: {
      blockSizeTokens: args.pageSize,
      ...(args.maxTotalTokens === undefined
        ? {}
        : { numGpuBlocks: Math.max(1, Math.floor(args.maxTotalTokens / args.pageSize)) }),
      maxNumSeqs: maxRunning,
      maxNumBatchedTokens: chunked > 0 ? chunked : args.maxPrefillTokens,
      enableChunkedPrefill: chunked > 0,
      enablePrefixCaching: !args.disableRadixCache,
      ...(args.randomSeed === undefined ? {} : { seed: args.randomSeed }),
    },
    contextLengthTokens: args.contextLength,
    ...(publish
      ? {
        zmqKvEvents: {
          endpoint: kv.endpoint,
          topic: kv.topic,
          ...(kv.replay_endpoint === null ? {} : { replayEndpoint: kv.replay_endpoint }),
        },
      }
      : {}),
  });
  const app = createSglangApiApp({
    engine: sim.engine,
    tokenizer: {
      decode: (ids, o) => sim.tokenizer.decode(ids, o),
      encode: (text) => sim.tokenizer.encode(text),
    },
    eosTokenIds: sim.tokenizer.eosTokenIds,
    args,
    contextLength: sim.contextLengthTokens,
    maxTotalNumTokens: sim.options.numGpuBlocks * sim.options.blockSizeTokens,
    maxRunningRequests: maxRunning,
    chunkedPrefillSize: chunked,
  });
  return {
    engine: sim.engine,
    app,
    contextLength: sim.contextLengthTokens,
    servedModelName: args.servedModelName,
  };
}

/** SGLang binds its PUB socket for `*`, `::`, ipc and inproc endpoints, else connects. */
function bindsEndpoint(endpoint: string): boolean {
  return endpoint.includes("*") || endpoint.includes("::") || /^(ipc|inproc):\/\//.test(endpoint);
}
