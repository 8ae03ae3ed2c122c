import type { Hono } from "hono";
import { DynamoError } from "../../errors/mod.ts";
import { ModelTokenizer } from "../../llm/mod.ts";
import {
  buildMockerVocabulary,
  MockerEngine,
  type MockerOptionsInput,
  resolveMockerOptions,
} from "../mocker/mod.ts";
import { findModelDir } from "../external/mod.ts";
import { VLLM_DEFAULT_MAX_NUM_BATCHED_TOKENS, VLLM_DEFAULT_MAX_NUM_SEQS } from "../vllm/mod.ts";
import { createVllmApiApp } from "./vllm_api_app.ts";
import type { VllmServeArgs } from "./vllm_serve_args.ts";

/** A vLLM stand-in, built and not yet started: start `engine`, then serve `app`. */
export interface VllmStandIn {
  readonly engine: MockerEngine;
  readonly app: Hono;
  readonly maxModelLen: number;
  readonly servedModelNames: readonly string[];
}

/**
 * Builds a stand-in for `vllm serve` from its command line: the mocker simulates the
 * engine (vLLM-style scheduler, prefix cache, timing), configured from vLLM's flags
 * (`--block-size`, `--num-gpu-blocks-override`, `--max-num-seqs`,
 * `--max-num-batched-tokens`, `--max-model-len`, `--[no-]enable-prefix-caching`,
 * `--[no-]enable-chunked-prefill`, `--seed`) over `mocker` (the simulation's own settings),
 * publishing KV events as `--kv-events-config` says. As vLLM does, the model directory (or
 * `--tokenizer`, or the Hugging Face cache's snapshot of a model id) supplies the
 * tokenizer, and `max_model_len` defaults to config.json's `max_position_embeddings`.
 */
export async function createVllmStandIn(
  args: VllmServeArgs,
  mocker: MockerOptionsInput = {},
): Promise<VllmStandIn> {
  // As vLLM: a local folder, else the Hugging Face cache's copy of the model id.
  const model = await findModelDir(
    args.tokenizer === undefined ? args.model : undefined,
    args.tokenizer,
    {
      flag: "--tokenizer",
    },
  );
  const tokenizer = await ModelTokenizer.load(model.dir);
  const maxModelLen = args.maxModelLen ?? model.maxPositionEmbeddings ??
    resolveMockerOptions(mocker).contextLengthTokens;
  let options;
  try {
    options = resolveMockerOptions({
      ...mocker,
      blockSizeTokens: args.blockSize,
      enablePrefixCaching: args.enablePrefixCaching,
      enableChunkedPrefill: args.enableChunkedPrefill,
      numGpuBlocks: args.numGpuBlocksOverride ?? mocker.numGpuBlocks,
      maxNumSeqs: args.maxNumSeqs ?? VLLM_DEFAULT_MAX_NUM_SEQS,
      maxNumBatchedTokens: args.maxNumBatchedTokens ?? VLLM_DEFAULT_MAX_NUM_BATCHED_TOKENS,
      contextLengthTokens: maxModelLen,
      ...(args.seed === undefined ? {} : { seed: args.seed }),
    });
  } catch (err) {
    if (err instanceof DynamoError) throw new DynamoError(err.errorClass, err.reason, err.message);
    throw err;
  }
  const kv = args.kvEventsConfig;
  const publish = kv !== undefined && kv.enable_kv_cache_events && kv.publisher === "zmq";
  if (publish && !bindsEndpoint(kv.endpoint)) {
    throw new DynamoError(
      "invalid_request",
      "kv_events_connect",
      `Cannot publish KV events on ${kv.endpoint}: vLLM connects to such an endpoint instead of binding it, which the stand-in does not model (use tcp://*:PORT)`,
    );
  }
  const engine = new MockerEngine({
    options,
    vocabulary: buildMockerVocabulary(
      (text) => tokenizer.encode(text, { addSpecialTokens: false }),
      [...tokenizer.eosTokenIds],
    ),
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
  const app = createVllmApiApp({
    engine,
    tokenizer,
    servedModelNames: args.servedModelNames,
    modelRoot: args.model,
    maxModelLen,
    eosTokenIds: tokenizer.eosTokenIds,
    enablePromptTokensDetails: args.enablePromptTokensDetails,
    cache: {
      blockSize: options.blockSizeTokens,
      numGpuBlocks: options.numGpuBlocks,
      enablePrefixCaching: options.enablePrefixCaching,
    },
  });
  return { engine, app, maxModelLen, servedModelNames: args.servedModelNames };
}

/** vLLM binds its PUB socket for `*`, `::`, ipc and inproc endpoints, else connects. */
function bindsEndpoint(endpoint: string): boolean {
  return endpoint.includes("*") || endpoint.includes("::") || /^(ipc|inproc):\/\//.test(endpoint);
}
