import assert from "node:assert/strict";
import * as zmq from "zeromq";
import { MemoryDiscovery, MemoryDiscoveryStore } from "../discovery/mod.ts";
import { buildMockerVocabulary, MockerEngine, type MockerVocabulary } from "../engines/mod.ts";
import { DynamoError } from "../errors/mod.ts";
import { KV_DUMP_ENDPOINT, KV_EVENTS_ENDPOINT, type KvDumpHeader } from "../kv_events/mod.ts";
import { QWEN3_TOKENIZER_DIR, qwen3Tokenizer } from "../llm/testing.ts";
import { setLogLevel } from "../observability/mod.ts";
import {
  BUCKETS,
  type EngineOutput,
  type EngineRequest,
  type KvCacheEvent,
  type KvCacheEventData,
  type KvStoredBlock,
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
import { BlockHasher } from "../tokens/mod.ts";
import { systemClock } from "../util/mod.ts";
import { TOPICS, type WorkerConfig, WorkerRoleHandle } from "./worker_role.ts";

setLogLevel("error");

/** A small vocabulary for tests that need no real tokenizer. */
const TEST_VOCABULARY: MockerVocabulary = {
  wordTokenIds: Array.from({ length: 40 }, (_, i) => [1000 + i]),
  eosTokenIds: [151645],
  sentenceEndTokenIds: [13],
  sentenceStartTokenIds: [[4000]],
};

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

/** An event-plane subscriber following the worker's load and KV events, as a router would. */
function followWorker(store: MemoryDiscoveryStore) {
  const observer = new MemoryDiscovery(store);
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
  return {
    loads,
    kvEvents,
    gaps,
    async close(): Promise<void> {
      follow.abort();
      await following;
      await subscriber.close();
      await observer.close();
    },
  };
}

async function collect(stream: AsyncIterable<unknown>): Promise<unknown[]> {
  const items: unknown[] = [];
  for await (const item of stream) items.push(item);
  return items;
}

type Stored = { stored: { parent_hash: bigint | null; blocks: KvStoredBlock[] } };

Deno.test("WorkerRoleHandle relays the mocker's vLLM-format ZMQ KV events and serves kv_events and kv_dump", async () => {
  const store = new MemoryDiscoveryStore();
  const discovery = new MemoryDiscovery(store);
  const engine = new MockerEngine({
    options: { speedupRatio: 100, blockSizeTokens: 4, numGpuBlocks: 256 },
    vocabulary: TEST_VOCABULARY,
    zmqKvEvents: { endpoint: "tcp://127.0.0.1:0", replayEndpoint: "tcp://127.0.0.1:0" },
  });
  // The mocker's own record of what it published, to know when everything has arrived.
  const internal: KvCacheEvent[] = [];
  engine.onKvEvents((events) => internal.push(...events));
  const worker = await WorkerRoleHandle.start(
    { discovery, engine, clock: systemClock, eosTokenIds: [151645] },
    CONFIG,
  );
  const plane = followWorker(store);
  const client = new RequestPlaneClient();
  const address = { host: "127.0.0.1", port: Number(worker.address.split(":")[1]) };
  try {
    await until(() => plane.loads.length > 0, "a load report (the event plane is connected)");
    // Two requests sharing a 4-token prefix, one after the other.
    const prompts = [[7, 7, 7, 7, 1, 2, 3, 4, 5], [7, 7, 7, 7, 9, 9, 9, 9]];
    const sequences: number[][] = [];
    for (const [i, prompt] of prompts.entries()) {
      const outputs = (await collect(
        client.call(address, "generate", request(`r${i}`, prompt, 5)),
      )) as EngineOutput[];
      sequences.push([...prompt, ...outputs.flatMap((o) => o.token_ids)]);
    }
    const blocksOf = (data: KvCacheEventData[]) =>
      data.flatMap((d) => typeof d === "object" && "stored" in d ? d.stored.blocks : []);
    const published = blocksOf(internal.map((e) => e.data));
    await until(
      () => blocksOf(plane.kvEvents.map((e) => e.event.data)).length === published.length,
      "every stored block on the event plane",
    );
    const events = plane.kvEvents;
    const header = (await collect(client.call(address, KV_DUMP_ENDPOINT, {})))[0] as KvDumpHeader;
    assert.equal(header.last_event_id, events.length);
    assert.deepEqual(blocksOf(events.map((e) => e.event.data)), published, "what the mocker sent");
    assert.deepEqual(events.map((e) => e.event.event_id), events.map((_, i) => i + 1));
    assert.ok(events.every((e) => e.worker_id === worker.instanceId && e.event.dp_rank === 0));

    // Every block stored, in order, is a block of one of the sequences, hashed as the router
    // hashes prompts: tokens_hash = XXH3(tokens, 1337); block_hash = the mocker's chained hash.
    const hasher = new BlockHasher();
    const expected = new Map<bigint, { tokens: bigint; parent: bigint | null }>();
    for (const seq of sequences) {
      const local = hasher.localHashes(seq, 4);
      const chain = hasher.sequenceHashes(local);
      chain.forEach((h, i) => expected.set(h, { tokens: local[i]!, parent: chain[i - 1] ?? null }));
    }
    const storedBlocks: bigint[] = [];
    for (const e of events) {
      assert.ok(typeof e.event.data === "object" && "stored" in e.event.data, "only stores here");
      let parent = e.event.data.stored.parent_hash;
      for (const b of e.event.data.stored.blocks) {
        assert.deepEqual({ tokens: b.tokens_hash, parent }, expected.get(b.block_hash));
        storedBlocks.push(b.block_hash);
        parent = b.block_hash;
      }
    }
    const promptA = hasher.sequenceHashes(hasher.localHashes(sequences[0]!, 4));
    assert.deepEqual(
      storedBlocks.slice(0, 2),
      promptA.slice(0, 2),
      "the first prompt's 2 blocks first",
    );
    assert.equal(
      new Set(storedBlocks).size,
      storedBlocks.length,
      "the shared block is stored once",
    );

    // kv_events returns exactly what the event plane carried.
    const range = await collect(
      client.call(address, KV_EVENTS_ENDPOINT, { start_id: 2, end_id: header.last_event_id }),
    );
    assert.deepEqual(range, events.slice(1));
    // kv_dump rebuilds the same blocks, parents first.
    const [dumpHeader, ...dumped] = (await collect(client.call(address, KV_DUMP_ENDPOINT, {}))) as [
      KvDumpHeader,
      ...RouterEvent[],
    ];
    assert.deepEqual(dumpHeader, header);
    const seen = new Set<bigint | null>([null]);
    for (const e of dumped) {
      const { stored } = e.event.data as Stored;
      assert.ok(seen.has(stored.parent_hash), "parent before child");
      for (const b of stored.blocks) seen.add(b.block_hash);
    }
    assert.deepEqual([...seen].slice(1).sort(), [...storedBlocks].sort());
    assert.deepEqual(plane.gaps, []);
  } finally {
    await client.close();
    await worker.shutdown();
    await plane.close();
    await discovery.close();
  }
});

/** Bytes from a hex listing; `//` comments and whitespace are ignored. */
function hex(listing: string): Uint8Array {
  const digits = listing.replace(/\/\/.*$/gm, "").replace(/\s+/g, "");
  return new Uint8Array(digits.match(/../g)!.map((b) => parseInt(b, 16)));
}

Deno.test("WorkerRoleHandle relays hand-built vLLM messages from a foreign ZMQ publisher", async () => {
  const raw = new zmq.Publisher({ linger: 0, sendTimeout: 0 });
  await raw.bind("tcp://127.0.0.1:*");
  const store = new MemoryDiscoveryStore();
  const discovery = new MemoryDiscovery(store);
  const engine = new MockerEngine({
    options: { speedupRatio: 100, blockSizeTokens: 4, numGpuBlocks: 64 },
    vocabulary: TEST_VOCABULARY,
  });
  const worker = await WorkerRoleHandle.start(
    { discovery, engine, clock: systemClock, eosTokenIds: [151645] },
    { ...CONFIG, kvEvents: { endpoint: raw.lastEndpoint!.replace("127.0.0.1", "*") } },
  );
  const plane = followWorker(store);
  let seq = 0;
  const send = (payload: Uint8Array) => {
    const seqFrame = new Uint8Array(8);
    seqFrame[7] = seq++; // u64 big-endian; a handful of messages only
    return raw.send([new Uint8Array(0), seqFrame, payload]);
  };
  try {
    await until(() => plane.loads.length > 0, "a load report");
    // Until the worker's SUB has joined, messages are dropped: send Cleared until one arrives.
    const cleared = hex(`
      93 cb 3f f8 00 00 00 00 00 00     // [1.5,
      91 91                             //  [[
      b0 41 6c 6c 42 6c 6f 63 6b 73 43 6c 65 61 72 65 64 // "AllBlocksCleared"]],
      00                                //  0]
    `);
    while (plane.kvEvents.length === 0) {
      await send(cleared);
      await new Promise((r) => setTimeout(r, 10));
    }
    const probes = seq;
    await send(hex(`
      93                                // [
      cb 41 d9 54 fc 40 20 00 00        //  1700000000.5,
      91 9c                             //  [[ (BlockStored, 12 items)
      ab 42 6c 6f 63 6b 53 74 6f 72 65 64 // "BlockStored",
      92 cf fe dc ba 98 76 54 32 10 fe  //   [0xfedcba9876543210 (u64), -2 (i8)],
      c0                                //   parent: nil,
      98 01 02 03 04 05 06 07 08        //   [1, 2, 3, 4, 5, 6, 7, 8],
      04                                //   4,
      c0 a3 47 50 55 c0                 //   nil, "GPU", nil,
      c0 c0 c0 c0                       //   nil, nil, nil, nil]],
      00                                //  0]
    `));
    await send(hex(`
      83                                // {
      a2 74 73 cb 3f f8 00 00 00 00 00 00 // "ts": 1.5,
      a6 65 76 65 6e 74 73              //  "events":
      91 83                             //  [{
      a4 74 79 70 65                    //    "type":
      ac 42 6c 6f 63 6b 52 65 6d 6f 76 65 64 // "BlockRemoved",
      ac 62 6c 6f 63 6b 5f 68 61 73 68 65 73 // "block_hashes":
      91 fe                             //    [-2],
      a6 6d 65 64 69 75 6d a3 47 50 55  //    "medium": "GPU"}],
      b2 64 61 74 61 5f 70 61 72 61 6c 6c 65 6c 5f 72 61 6e 6b // "data_parallel_rank":
      00                                //  0}
    `));
    // Probes still in flight arrive before these two: one socket keeps its order.
    await until(
      () =>
        plane.kvEvents.some((e) => typeof e.event.data === "object" && "removed" in e.event.data),
      "the stored and removed events",
    );
    const events = plane.kvEvents;
    assert.deepEqual(events.map((e) => e.event.event_id), events.map((_, i) => i + 1));
    assert.ok(events.slice(0, -2).every((e) => e.event.data === "cleared"));
    const [storedEvent, removedEvent] = events.slice(-2);
    const id = events.length - 1;
    const local = new BlockHasher().localHashes([1, 2, 3, 4, 5, 6, 7, 8], 4);
    assert.deepEqual(storedEvent, {
      worker_id: worker.instanceId,
      event: {
        event_id: id,
        dp_rank: 0,
        data: {
          stored: {
            parent_hash: null,
            blocks: [
              { block_hash: 0xfedcba9876543210n, tokens_hash: local[0], token_ids: [1, 2, 3, 4] },
              { block_hash: (1n << 64n) - 2n, tokens_hash: local[1], token_ids: [5, 6, 7, 8] },
            ],
          },
        },
      },
    });
    assert.deepEqual(removedEvent, {
      worker_id: worker.instanceId,
      event: {
        event_id: id + 1,
        dp_rank: 0,
        data: { removed: { block_hashes: [(1n << 64n) - 2n] } },
      },
    });
    assert.ok(probes >= 1);
  } finally {
    await worker.shutdown();
    await plane.close();
    await discovery.close();
    raw.close();
  }
});
