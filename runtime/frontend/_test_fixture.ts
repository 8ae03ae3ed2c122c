import { MemoryDiscovery, MemoryDiscoveryStore } from "../discovery/mod.ts";
import { buildMockerVocabulary, MockerEngine } from "../engines/mod.ts";
import { DynamoError } from "../errors/mod.ts";
import { QWEN3_TOKENIZER_DIR, qwen3Tokenizer } from "../llm/testing.ts";
import { BUCKETS, discoveryKey, type EngineRequest, type ModelCard } from "../protocol/mod.ts";
import { systemClock } from "../util/mod.ts";
import { type FrontendRole, startFrontendRole } from "./frontend_role.ts";
import type { StreamCaller } from "./pipeline.ts";

export const MODEL = "Qwen/Qwen3-0.6B";

/** A worker whose "request plane" is a direct call into an in-process mocker engine. */
export interface FakeWorker {
  readonly instanceId: number;
  readonly engine: MockerEngine;
  /** Requests this worker received. */
  readonly received: EngineRequest[];
  /** When set, connecting to this worker fails as if it were down. */
  unreachable: boolean;
  /** When set, the worker refuses new streams as a draining worker does. */
  draining: boolean;
  /**
   * When set, the worker accepts a request, sends this many items and then its connection
   * drops (as when the worker process dies).
   */
  lostAfterItems: number | undefined;
}

async function* dropAfter(
  stream: AsyncIterable<unknown>,
  items: number,
  port: number,
): AsyncGenerator<unknown> {
  let sent = 0;
  for await (const item of stream) {
    if (sent === items) break;
    sent++;
    yield item;
  }
  throw new DynamoError("unavailable", "disconnected", `Lost connection to port ${port}`);
}

export function card(contextLength = 40960): ModelCard {
  return {
    display_name: MODEL,
    source_path: QWEN3_TOKENIZER_DIR,
    tokenizer_dir: QWEN3_TOKENIZER_DIR,
    chat_template_file: null,
    context_length: contextLength,
    kv_cache_block_size: 64,
    model_type: 3,
    engine: "mocker",
    role: "agg",
    eos_token_ids: [151645],
    runtime_config: {
      total_kv_blocks: 1024,
      max_num_seqs: 64,
      max_num_batched_tokens: 8192,
      data_parallel_size: 1,
    },
  };
}

/** A frontend over memory discovery and `workers` in-process mocker workers. */
export async function frontendFixture(
  options: {
    workers?: number;
    maxBodyBytes?: number;
    contextLength?: number;
    speedupRatio?: number;
    requestTimeoutMs?: number;
  } = {},
): Promise<{
  role: FrontendRole;
  workers: FakeWorker[];
  discovery: MemoryDiscovery;
  workerDiscovery: MemoryDiscovery;
  addWorker(): Promise<FakeWorker>;
  removeWorker(w: FakeWorker): Promise<void>;
  close(): Promise<void>;
}> {
  const store = new MemoryDiscoveryStore();
  const discovery = new MemoryDiscovery(store);
  const workerDiscovery = new MemoryDiscovery(store);
  const tok = await qwen3Tokenizer();
  const vocabulary = buildMockerVocabulary((t) => tok.encode(t, { addSpecialTokens: false }), [
    151645,
  ]);
  const byPort = new Map<number, FakeWorker>();
  const caller: StreamCaller = {
    call(target, _endpoint, payload, callOptions) {
      const w = byPort.get(target.port);
      if (w === undefined || w.unreachable) {
        throw new DynamoError(
          "unavailable",
          "connect_failed",
          `Cannot connect to port ${target.port}`,
        );
      }
      if (w.draining) {
        throw new DynamoError("unavailable", "draining", "Worker is draining");
      }
      w.received.push(payload as EngineRequest);
      const stream = w.engine.generate(
        payload as EngineRequest,
        callOptions?.signal ?? new AbortController().signal,
      );
      return w.lostAfterItems === undefined
        ? stream
        : dropAfter(stream, w.lostAfterItems, target.port);
    },
  };
  const workers: FakeWorker[] = [];
  const addWorker = async (): Promise<FakeWorker> => {
    const instanceId = 100 + workers.length;
    const engine = new MockerEngine({
      options: { speedupRatio: options.speedupRatio ?? 1000, numGpuBlocks: 1024 },
      vocabulary,
    });
    await engine.start();
    const w: FakeWorker = {
      instanceId,
      engine,
      received: [],
      unreachable: false,
      draining: false,
      lostAfterItems: undefined,
    };
    byPort.set(instanceId, w);
    workers.push(w);
    const key = discoveryKey("dynamo", "backend", "generate", instanceId);
    await workerDiscovery.put(BUCKETS.instances, key, {
      type: "Endpoint",
      namespace: "dynamo",
      component: "backend",
      endpoint: "generate",
      instance_id: instanceId,
      transport: { tcp: `127.0.0.1:${instanceId}/${instanceId.toString(16)}/generate` },
    });
    await workerDiscovery.put(BUCKETS.models, key, {
      type: "Model",
      namespace: "dynamo",
      component: "backend",
      endpoint: "generate",
      instance_id: instanceId,
      card_json: card(options.contextLength),
    });
    return w;
  };
  for (let i = 0; i < (options.workers ?? 1); i++) await addWorker();
  const role = await startFrontendRole({ discovery, caller, clock: systemClock }, {
    namespace: "dynamo",
    routerMode: "round-robin",
    routerSeed: 1,
    maxBodyBytes: options.maxBodyBytes ?? 1 << 20,
    requestTimeoutMs: options.requestTimeoutMs ?? 30_000,
    followLoad: false,
  });
  const removeWorker = async (w: FakeWorker): Promise<void> => {
    const key = discoveryKey("dynamo", "backend", "generate", w.instanceId);
    await workerDiscovery.delete(BUCKETS.models, key);
    await workerDiscovery.delete(BUCKETS.instances, key);
  };
  return {
    role,
    workers,
    discovery,
    workerDiscovery,
    addWorker,
    removeWorker,
    async close() {
      await role.close();
      for (const w of workers) await w.engine.stop();
      await discovery.close();
      await workerDiscovery.close();
    },
  };
}

/** Waits (bounded) until `cond` holds, yielding to the event loop between checks. */
export async function until(cond: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
