import { basename } from "node:path";
import type { Hono } from "hono";
import { DynamoError } from "../../errors/mod.ts";
import type { MockerEngine, MockerOptionsInput } from "../mocker/mod.ts";
import { createStandInMocker } from "../stand_in/mod.ts";
import { createTrtllmApiApp } from "./trtllm_api_app.ts";
import { TrtllmIterationStats } from "./trtllm_metrics_text.ts";
import { TrtllmKvEventPublisher } from "./trtllm_kv_publisher.ts";
import type { TrtllmServeArgs } from "./trtllm_serve_args.ts";

/** A TensorRT-LLM stand-in, built and not yet started: `start()`, then serve `app`. */
export interface TrtllmStandIn {
  readonly engine: MockerEngine;
  readonly app: Hono;
  readonly modelName: string;
  readonly maxSeqLen: number;
  /** Starts the engine, then binds the KV event publisher (if configured). */
  start(): Promise<void>;
  /** Where KV events are published once started, if they are. */
  kvEventsEndpoint(): string | undefined;
  stop(): Promise<void>;
}

/**
 * Builds a stand-in for `trtllm-serve` from its command line and LLM API options: the
 * mocker simulates the engine, configured from `kv_cache_config` (`tokens_per_block` as the
 * block size, `max_tokens` as the KV pool, `enable_block_reuse` as prefix caching),
 * `max_batch_size`, `max_num_tokens`, `max_seq_len` (default: config.json's) and
 * `enable_chunked_prefill` (off by default, as in TensorRT-LLM) over `mocker` (the
 * simulation's own settings). Each simulated pass is one iteration of its stats; KV events
 * go out as `kv_cache_config.kv_events_config` says, in TensorRT-LLM's map form.
 */
export async function createTrtllmStandIn(
  args: TrtllmServeArgs,
  mocker: MockerOptionsInput = {},
): Promise<TrtllmStandIn> {
  if (args.kvEvents !== undefined && !args.enableBlockReuse) {
    throw new DynamoError(
      "invalid_request",
      "kv_events_without_reuse",
      "trtllm-serve: KV cache events need kv_cache_config.enable_block_reuse",
    );
  }
  const stats = new TrtllmIterationStats();
  // The pass hook needs the engine it is given to (it reads the load after each pass).
  const built: { engine?: MockerEngine } = {};
  const sim = await createStandInMocker({
    model: args.model,
    tokenizer: args.tokenizer,
    tokenizerFlag: "--tokenizer",
    mocker,
    engine: {
      blockSizeTokens: args.tokensPerBlock,
      ...(args.kvCacheMaxTokens === undefined
        ? {}
        : { numGpuBlocks: Math.max(1, Math.floor(args.kvCacheMaxTokens / args.tokensPerBlock)) }),
      maxNumSeqs: args.maxBatchSize,
      maxNumBatchedTokens: args.maxNumTokens,
      enableChunkedPrefill: args.enableChunkedPrefill,
      enablePrefixCaching: args.enableBlockReuse,
    },
    contextLengthTokens: args.maxSeqLen,
    onPass: (pass) => {
      if (built.engine !== undefined) {
        stats.record(pass.startMs, pass.endMs, built.engine.load());
      }
    },
  });
  built.engine = sim.engine;
  const modelName = await isDirectory(args.model) ? basename(args.model) : args.model;
  const app = createTrtllmApiApp({
    engine: sim.engine,
    tokenizer: {
      decode: (ids, o) => sim.tokenizer.decode(ids, o),
      encode: (text, add) => sim.tokenizer.encode(text, { addSpecialTokens: add }),
    },
    eosTokenIds: sim.tokenizer.eosTokenIds,
    args,
    modelName,
    maxSeqLen: sim.contextLengthTokens,
    totalKvBlocks: sim.options.numGpuBlocks,
    stats,
  });
  let publisher: TrtllmKvEventPublisher | undefined;
  let unsubscribe: (() => void) | undefined;
  return {
    engine: sim.engine,
    app,
    modelName,
    maxSeqLen: sim.contextLengthTokens,
    async start() {
      await sim.engine.start();
      if (args.kvEvents === undefined) return;
      publisher = await TrtllmKvEventPublisher.bind({
        endpoint: args.kvEvents.endpoint,
        topic: args.kvEvents.topic,
        blockSizeTokens: sim.options.blockSizeTokens,
      });
      const pub = publisher;
      unsubscribe = sim.engine.onKvEvents((events) => pub.publish(events));
    },
    kvEventsEndpoint: () => publisher?.endpoint,
    async stop() {
      await sim.engine.stop();
      unsubscribe?.();
      await publisher?.close();
    },
  };
}

/** `OpenAIServer` names a model given as a folder by the folder's name. */
async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}
