/** VllmKvEventPublisher, VllmKvEventSubscriber and the replay protocol over real ZeroMQ sockets. */
import assert from "node:assert/strict";
import * as zmq from "zeromq";
import { setLogLevel } from "../observability/mod.ts";
import { BlockHasher } from "../tokens/mod.ts";
import type { KvEventUpdate } from "./kv_event_batcher.ts";
import { offsetEndpointPort, VllmKvEventPublisher } from "./vllm_publisher.ts";
import { requestVllmReplay } from "./vllm_replay_client.ts";
import { VllmKvEventSubscriber } from "./vllm_subscriber.ts";
import { decodeVllmBatch, encodeVllmMessage, type VllmBlockStored } from "./vllm_wire.ts";

setLogLevel("off");

async function waitFor(predicate: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!predicate()) {
    if (performance.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

const hasher = new BlockHasher();

/** A BlockStored of `blocks` 2-token blocks with tokens from `first`, chained from `parent`. */
function stored(hashes: bigint[], parent: bigint | null, first: number): VllmBlockStored {
  return {
    type: "BlockStored",
    blockHashes: hashes,
    parentBlockHash: parent,
    tokenIds: Array.from({ length: hashes.length * 2 }, (_, i) => first + i),
    blockSize: 2,
    loraId: null,
    medium: "GPU",
    loraName: null,
  };
}

/**
 * Publishes empty batches until the subscriber applies one: ZeroMQ gives no signal when a
 * subscription has reached the publisher, and batches sent before that are dropped.
 */
async function untilSubscribed(
  pub: VllmKvEventPublisher,
  sub: VllmKvEventSubscriber,
): Promise<void> {
  const deadline = performance.now() + 5000;
  while (sub.stats.appliedBatches === 0) {
    if (performance.now() > deadline) throw new Error("Timed out waiting for the subscription");
    pub.publish([]);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

Deno.test("VllmKvEventSubscriber turns a VllmKvEventPublisher's batches into merged internal events", async () => {
  const pub = await VllmKvEventPublisher.bind({
    endpoint: "tcp://127.0.0.1:0",
    topic: "kv-events",
    dpRank: 3,
  });
  const received: KvEventUpdate[][] = [];
  const sub = new VllmKvEventSubscriber({
    endpoint: pub.endpoint,
    topic: "kv-events",
    blockSizeTokens: 2,
    onEvents: (u) => received.push([...u]),
  });
  try {
    assert.match(pub.endpoint, /^tcp:\/\/127\.0\.0\.1:\d+$/);
    assert.doesNotMatch(pub.endpoint, /:0$/);
    await untilSubscribed(pub, sub);
    // One engine batch: a chain in two events (merged), then a removal.
    pub.publish([stored([11n], null, 100), stored([12n], 11n, 102)]);
    pub.publish([{ type: "BlockRemoved", blockHashes: [12n], medium: "GPU" }]);
    await waitFor(() => received.length === 2, "two batches");
    const local = hasher.localHashes([100, 101, 102, 103], 2);
    assert.deepEqual(received[0], [{
      data: {
        stored: {
          parent_hash: null,
          blocks: [
            { block_hash: 11n, tokens_hash: local[0], token_ids: [100, 101] },
            { block_hash: 12n, tokens_hash: local[1], token_ids: [102, 103] },
          ],
        },
      },
      dp_rank: 3,
    }]);
    assert.deepEqual(received[1], [{ data: { removed: { block_hashes: [12n] } }, dp_rank: 3 }]);
    assert.equal(
      sub.stats.lostBatches,
      sub.stats.missedBatches,
      "no replay: missed probes are lost",
    );
    assert.equal(sub.expectedSeq, pub.nextSeq);
  } finally {
    await sub.close();
    await pub.close();
  }
});

Deno.test("VllmKvEventSubscriber fills a gap from the replay socket, in order", async () => {
  // A send queue of 1 drops the middle one of three batches published in one turn.
  const pub = await VllmKvEventPublisher.bind({
    endpoint: "tcp://127.0.0.1:*",
    replayEndpoint: "tcp://127.0.0.1:0",
    maxQueuedBatches: 1,
  });
  const received: KvEventUpdate[] = [];
  const sub = new VllmKvEventSubscriber({
    endpoint: pub.endpoint,
    replayEndpoint: pub.replayEndpoint,
    blockSizeTokens: 2,
    onEvents: (u) => received.push(...u),
  });
  try {
    await untilSubscribed(pub, sub);
    await pub.flush();
    // Probes sent before the subscription joined were missed and replayed too.
    const before = { ...sub.stats, replays: pub.replaysServed };
    pub.publish([stored([1n], null, 0)]);
    pub.publish([stored([2n], 1n, 2)]); // dropped from the send queue
    pub.publish([stored([3n], 2n, 4)]);
    assert.equal(pub.droppedBatches, 1);
    await waitFor(() => received.length === 3, "three events");
    const hashes = received.map((u) => {
      assert.ok(typeof u.data === "object" && "stored" in u.data);
      return u.data.stored.blocks[0]!.block_hash;
    });
    assert.deepEqual(hashes, [1n, 2n, 3n]);
    assert.equal(sub.stats.missedBatches - before.missedBatches, 1);
    assert.equal(sub.stats.recoveredBatches - before.recoveredBatches, 1);
    assert.equal(sub.stats.lostBatches, 0);
    assert.equal(pub.replaysServed - before.replays, 1);
  } finally {
    await sub.close();
    await pub.close();
  }
});

Deno.test("VllmKvEventSubscriber counts a gap it cannot fill as lost and carries on", async () => {
  const pub = await VllmKvEventPublisher.bind({
    endpoint: "tcp://127.0.0.1:0",
    maxQueuedBatches: 1,
  });
  const received: KvEventUpdate[] = [];
  const sub = new VllmKvEventSubscriber({
    endpoint: pub.endpoint,
    blockSizeTokens: 2,
    onEvents: (u) => received.push(...u),
  });
  try {
    await untilSubscribed(pub, sub);
    await pub.flush();
    const lostBefore = sub.stats.lostBatches; // probes sent before the subscription joined
    pub.publish([stored([1n], null, 0)]);
    pub.publish([stored([2n], 1n, 2)]);
    pub.publish([stored([3n], 2n, 4)]);
    await waitFor(() => received.length === 2, "two events");
    assert.equal(sub.stats.lostBatches - lostBefore, 1);
  } finally {
    await sub.close();
    await pub.close();
  }
});

Deno.test("requestVllmReplay() gets the buffered batches from a seq on, then the end marker", async () => {
  const pub = await VllmKvEventPublisher.bind({
    endpoint: "tcp://127.0.0.1:0",
    replayEndpoint: "tcp://127.0.0.1:0",
    bufferSteps: 3,
  });
  try {
    for (let i = 0; i < 5; i++) pub.publish([stored([BigInt(i + 1)], null, i)]);
    const all = await requestVllmReplay(pub.replayEndpoint!, 0n);
    assert.equal(all.complete, true);
    assert.deepEqual(all.batches.map((b) => b.seq), [2n, 3n, 4n], "the buffer keeps the last 3");
    const batch = decodeVllmBatch(all.batches[0]!.payload);
    assert.equal(batch.dpRank, 0);
    assert.deepEqual((batch.events[0] as VllmBlockStored).blockHashes, [3n]);
    const tail = await requestVllmReplay(pub.replayEndpoint!, 4n);
    assert.deepEqual(tail.batches.map((b) => b.seq), [4n]);
    const none = await requestVllmReplay(pub.replayEndpoint!, 99n);
    assert.deepEqual(none, { batches: [], complete: true });
  } finally {
    await pub.close();
  }
});

Deno.test("VllmKvEventSubscriber drops malformed messages from a foreign publisher and counts them", async () => {
  const raw = new zmq.Publisher({ linger: 0, sendTimeout: 0 });
  await raw.bind("tcp://127.0.0.1:*");
  const received: KvEventUpdate[] = [];
  const sub = new VllmKvEventSubscriber({
    endpoint: raw.lastEndpoint!,
    blockSizeTokens: 2,
    onEvents: (u) => received.push(...u),
  });
  try {
    const good = (seq: bigint) =>
      encodeVllmMessage({
        topic: "",
        seq,
        batch: { ts: 1, events: [{ type: "AllBlocksCleared" }], dpRank: 0 },
      });
    let seq = 0n;
    await waitFor(() => {
      void raw.send(good(seq++));
      return received.length > 0;
    }, "the subscription");
    await waitFor(() => sub.expectedSeq === seq, "every probe");
    const before = { ...sub.stats, received: received.length };
    const [topic, seqFrame] = good(seq++);
    await raw.send([topic!, seqFrame!, new Uint8Array([0xc1])]); // 0xc1: never used in msgpack
    await raw.send([new Uint8Array(0), new Uint8Array(3), new Uint8Array([0x90])]); // 3-byte seq
    await raw.send(good(seq++));
    await waitFor(
      () => received.length === before.received + 1,
      "the good batch after the bad ones",
    );
    assert.equal(sub.stats.malformedBatches, 2);
    // The bad batch's seq was readable: it is lost, not a gap, and the next one follows on.
    assert.equal(sub.stats.missedBatches, before.missedBatches);
    assert.equal(sub.stats.seqResets, 0);
    assert.equal(sub.expectedSeq, seq);
  } finally {
    await sub.close();
    raw.close();
  }
});

Deno.test("VllmKvEventSubscriber with sequenceStart first_seen takes the first batch's seq as the start", async () => {
  // TensorRT-LLM numbers batches from the wall clock: a first seq in the 10^18s is no gap.
  for (const sequenceStart of ["first_seen", "zero"] as const) {
    const raw = new zmq.Publisher({ linger: 0, sendTimeout: 0 });
    await raw.bind("tcp://127.0.0.1:*");
    const received: KvEventUpdate[] = [];
    const sub = new VllmKvEventSubscriber({
      endpoint: raw.lastEndpoint!,
      blockSizeTokens: 2,
      sequenceStart,
      onEvents: (u) => received.push(...u),
    });
    try {
      let seq = 1_795_000_000_000_000_000n;
      await waitFor(() => {
        void raw.send(encodeVllmMessage({
          topic: "",
          seq: seq++,
          batch: { ts: 1, events: [{ type: "AllBlocksCleared" }], dpRank: 0 },
        }));
        return received.length > 0;
      }, "the subscription");
      if (sequenceStart === "first_seen") {
        assert.equal(sub.stats.missedBatches, 0);
        assert.equal(sub.stats.lostBatches, 0);
      } else {
        assert.ok(sub.stats.missedBatches > 1e18, "a numbering from 0 sees a huge gap");
      }
    } finally {
      await sub.close();
      raw.close();
    }
  }
});

Deno.test("offsetEndpointPort() adds the dp rank to the port as vLLM does", () => {
  assert.equal(offsetEndpointPort("tcp://*:5557", 0), "tcp://*:5557");
  assert.equal(offsetEndpointPort("tcp://*:5557", 2), "tcp://*:5559");
  assert.equal(offsetEndpointPort("tcp://127.0.0.1:0", 2), "tcp://127.0.0.1:0");
  assert.equal(offsetEndpointPort("inproc://cache", 1), "inproc://cache_dp1");
  assert.throws(() => offsetEndpointPort("udp://x:1", 1));
});
