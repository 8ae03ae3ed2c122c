import assert from "node:assert/strict";
import { MemoryDiscovery, MemoryDiscoveryStore } from "../discovery/mod.ts";
import { buildMockerVocabulary, MockerEngine } from "../engines/mod.ts";
import { DynamoError } from "../errors/mod.ts";
import { QWEN3_TOKENIZER_DIR, qwen3Tokenizer } from "../llm/testing.ts";
import { setLogLevel } from "../observability/mod.ts";
import {
  BUCKETS,
  type EngineOutput,
  type EngineRequest,
  type ModelInstance,
  parseTcpTransport,
  type RouterEvent,
  type WorkerLoad,
} from "../protocol/mod.ts";
import {
  componentSubject,
  EventSubscriber,
  followEventChannels,
  namespaceSubject,
  RequestPlaneClient,
} from "../transport/mod.ts";
import { systemClock } from "../util/mod.ts";
import { TOPICS, type WorkerConfig, WorkerRoleHandle } from "./worker_role.ts";

setLogLevel("warn");

const CONFIG: WorkerConfig = {
  namespace: "ns1",
  component: "backend",
  endpoint: "generate",
  modelName: "Qwen/Qwen3-0.6B",
  modelPath: QWEN3_TOKENIZER_DIR,
  tokenizerDir: QWEN3_TOKENIZER_DIR,
  role: "agg",
  host: "127.0.0.1",
  advertiseHost: "127.0.0.1",
  maxFrameBytes: 1 << 20,
  port: 0,
  loadIntervalMs: 50,
  drainTimeoutMs: 5_000,
};

function request(id: string, tokens: number[], maxTokens: number): EngineRequest {
  return {
    request_id: id,
    model: CONFIG.modelName,
    token_ids: tokens,
    stop_conditions: { max_tokens: maxTokens, min_tokens: 0, ignore_eos: true, stop_token_ids: [] },
    sampling_options: { temperature: null, top_p: null, top_k: null, seed: 1 },
    eos_token_ids: [151645],
  };
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

Deno.test("WorkerRoleHandle serves the request plane, publishes load and KV events, and drains", async () => {
  const store = new MemoryDiscoveryStore();
  const discovery = new MemoryDiscovery(store);
  const observer = new MemoryDiscovery(store);
  const tok = await qwen3Tokenizer();
  const engine = new MockerEngine({
    options: { speedupRatio: 100, blockSizeTokens: 4, numGpuBlocks: 256 },
    vocabulary: buildMockerVocabulary((t) => tok.encode(t, { addSpecialTokens: false }), [151645]),
  });
  const worker = await WorkerRoleHandle.start(
    { discovery, engine, clock: systemClock, eosTokenIds: [151645] },
    CONFIG,
  );
  const loads: WorkerLoad[] = [];
  const kvEvents: RouterEvent[] = [];
  const gaps: string[] = [];
  const subscriber = new EventSubscriber({
    subjectPrefixes: [
      namespaceSubject("ns1", TOPICS.load),
      componentSubject("ns1", "backend", TOPICS.kvEvents),
    ],
    onEvent: (env, event) => {
      if (env.topic.endsWith(TOPICS.load)) loads.push(event as WorkerLoad);
      else kvEvents.push(event as RouterEvent);
    },
    onGap: (id, expected, got, topic) => gaps.push(`${id} ${topic} ${expected}->${got}`),
  });
  const follow = new AbortController();
  const following = followEventChannels(observer, subscriber, {
    namespace: "ns1",
    signal: follow.signal,
  });
  const client = new RequestPlaneClient();
  try {
    // Registered once ready: endpoint, model card, event channels.
    const models = [...(await observer.list(BUCKETS.models)).values()] as ModelInstance[];
    assert.equal(models.length, 1);
    const card = models[0]!.card_json;
    assert.equal(card.display_name, "Qwen/Qwen3-0.6B");
    assert.equal(card.kv_cache_block_size, 4);
    assert.equal(card.runtime_config.total_kv_blocks, 256);
    assert.equal(card.engine, "mocker");
    assert.equal(card.role, "agg");
    assert.deepEqual(card.eos_token_ids, [151645]);
    const endpoint = [...(await observer.list(BUCKETS.instances)).values()][0]!;
    assert.equal(endpoint.type, "Endpoint");
    const address = parseTcpTransport((endpoint as { transport: { tcp: string } }).transport.tcp)!;
    assert.equal(address.instanceIdHex, worker.instanceId.toString(16));
    assert.equal((await observer.list(BUCKETS.eventChannels)).size, 2);

    await until(() => loads.length > 0, "a load report");
    assert.equal(loads[0]!.worker_id, worker.instanceId);
    assert.equal(loads[0]!.kv_total_blocks, 256);

    // A request over the real request plane; its prompt's full blocks become KV events.
    const prompt = Array.from({ length: 10 }, (_, i) => 1000 + i);
    const outputs: EngineOutput[] = [];
    for await (const item of client.call(address, "generate", request("r1", prompt, 6))) {
      outputs.push(item as EngineOutput);
    }
    const last = outputs.at(-1)!;
    assert.equal(last.finish_reason, "length");
    assert.equal(outputs.flatMap((o) => o.token_ids).length, 6);
    assert.equal(last.completion_usage?.prompt_tokens, 10);
    await until(() => kvEvents.length > 0, "a KV event");
    const first = kvEvents[0]!;
    assert.equal(first.worker_id, worker.instanceId);
    assert.equal(first.event.event_id, 1);
    const stored =
      (first.event.data as { stored: { parent_hash: bigint | null; blocks: unknown[] } })
        .stored;
    assert.equal(stored.parent_hash, null);
    assert.equal(stored.blocks.length, 2, "10 prompt tokens fill two 4-token blocks");

    // A malformed request is refused with a classified error.
    await assert.rejects(
      (async () => {
        for await (const _ of client.call(address, "generate", { request_id: "bad" })) {
          /* none */
        }
      })(),
      (err: unknown) => err instanceof DynamoError && err.errorClass === "invalid_request",
    );

    // Shutdown: deregistered at once, then the in-flight request completes.
    const long = (async () => {
      const items: EngineOutput[] = [];
      for await (const item of client.call(address, "generate", request("r2", prompt, 400))) {
        items.push(item as EngineOutput);
      }
      return items;
    })();
    await until(() => engine.load().num_requests_running === 1, "the long request to start");
    const stopping = worker.shutdown();
    await until(() => store.keys(BUCKETS.instances).length === 0, "deregistration");
    assert.equal(engine.load().num_requests_running, 1, "still serving while deregistered");
    const items = await long;
    assert.equal(items.flatMap((o) => o.token_ids).length, 400);
    await stopping;
    assert.equal(store.keys(BUCKETS.models).length, 0);
    assert.equal(store.keys(BUCKETS.eventChannels).length, 0);
    assert.deepEqual(gaps, []);
  } finally {
    follow.abort();
    await following;
    await subscriber.close();
    await client.close();
    await worker.shutdown();
    await discovery.close();
    await observer.close();
  }
});
