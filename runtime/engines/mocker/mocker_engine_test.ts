import assert from "node:assert/strict";
import * as zmq from "zeromq";
import { DynamoError } from "../../errors/mod.ts";
import { decodeVllmBatch, requestVllmReplay } from "../../kv_events/mod.ts";
import { BlockHasher } from "../../tokens/mod.ts";
import type { EngineOutput, KvCacheEvent } from "../../protocol/mod.ts";
import { type Clock, ManualClock } from "../../util/mod.ts";
import { runEngineConformance } from "../conformance.ts";
import type { MockerPassStats } from "./mocker_core.ts";
import { MockerEngine, type MockerEngineDeps } from "./mocker_engine.ts";
import { decodeTimeMs, prefillTimeMs } from "./timing.ts";
import { TEST_VOCABULARY, testRequest } from "./_test_helpers.ts";

runEngineConformance("MockerEngine", () => {
  const engine = new MockerEngine({ options: { speedupRatio: 1000 }, vocabulary: TEST_VOCABULARY });
  return Promise.resolve({ engine, cleanup: () => engine.stop() });
});

function engineOn(clock: Clock, deps: Partial<MockerEngineDeps> = {}): MockerEngine {
  return new MockerEngine({ vocabulary: TEST_VOCABULARY, clock, ...deps });
}

/** Lets pending tasks run until `condition` holds (no wall-clock sleeps: zero-delay turns only). */
async function waitUntil(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  throw new Error(`Gave up waiting for ${what}`);
}

/** Reads `stream` in the background into `items`; `done` resolves when it ends. */
function consume(
  stream: AsyncIterable<EngineOutput>,
): { items: EngineOutput[]; done: Promise<void> } {
  const items: EngineOutput[] = [];
  const done = (async () => {
    for await (const item of stream) items.push(item);
  })();
  return { items, done };
}

const tokensOf = (items: readonly EngineOutput[]): number =>
  items.reduce((n, item) => n + item.token_ids.length, 0);

Deno.test("MockerEngine does not show a token before its pass ends", async () => {
  const clock = new ManualClock(0);
  const engine = engineOn(clock);
  await engine.start();
  const { items, done } = consume(
    engine.generate(
      testRequest("a", { length: 10 }, { maxTokens: 2 }),
      new AbortController().signal,
    ),
  );
  await waitUntil(() => clock.pendingSleepers === 1, "the first pass");
  const firstPassMs = prefillTimeMs(1, 10, 0) + decodeTimeMs(1, 16384);
  await clock.advance(firstPassMs - 0.5);
  assert.equal(items.length, 0);
  await clock.advance(1);
  await waitUntil(() => items.length === 1, "the first token");
  assert.equal(items[0]!.token_ids.length, 1);
  await clock.advance(decodeTimeMs(1, 16384));
  await done;
  assert.equal(tokensOf(items), 2);
  assert.equal(items[items.length - 1]!.finish_reason, "length");
  await engine.stop();
});

Deno.test("MockerEngine schedules each pass from the previous pass's end, not from wake-up", async () => {
  const manual = new ManualClock(0);
  // A clock whose sleeps always overshoot by 3 ms, like a loaded machine.
  const late: Clock = {
    nowMs: () => manual.nowMs(),
    sleep: (ms, signal) => manual.sleep(ms + 3, signal),
  };
  const passes: MockerPassStats[] = [];
  const engine = engineOn(late, { onPass: (p) => passes.push(p) });
  await engine.start();
  const { done } = consume(
    engine.generate(
      testRequest("a", { length: 10 }, { maxTokens: 10 }),
      new AbortController().signal,
    ),
  );
  let finished = false;
  done.then(() => finished = true);
  for (let i = 0; i < 100 && !finished; i++) await manual.advance(10);
  await done;
  assert.equal(passes.length, 10);
  for (let k = 1; k < passes.length; k++) assert.equal(passes[k]!.startMs, passes[k - 1]!.endMs);
  await engine.stop();
});

Deno.test("MockerEngine coalesces a slow consumer's outputs instead of buffering without bound", async () => {
  const clock = new ManualClock(0);
  const engine = engineOn(clock, { maxBufferedOutputs: 2 });
  await engine.start();
  const stream = engine.generate(
    testRequest("a", { length: 10 }, { maxTokens: 20 }),
    new AbortController().signal,
  );
  await waitUntil(() => clock.pendingSleepers === 1, "the first pass");
  await clock.advance(1000); // every pass ends; nobody reads
  assert.equal(engine.load().num_requests_running, 0);
  const { items, done } = consume(stream);
  await done;
  assert.equal(items.length, 2);
  assert.equal(items[0]!.token_ids.length, 1);
  assert.equal(items[1]!.token_ids.length, 19);
  assert.equal(items[1]!.finish_reason, "length");
  assert.equal(items[1]!.completion_usage?.completion_tokens, 20);
  await engine.stop();
});

Deno.test("MockerEngine abort cancels in the core at once and ends the stream with cancelled", async () => {
  const clock = new ManualClock(0);
  const engine = engineOn(clock);
  await engine.start();
  const controller = new AbortController();
  const { items, done } = consume(
    engine.generate(testRequest("a", { length: 100 }, { maxTokens: 1000 }), controller.signal),
  );
  await waitUntil(() => clock.pendingSleepers === 1, "the first pass");
  await clock.advance(100);
  await waitUntil(() => items.length > 0, "tokens");
  assert.ok(engine.load().active_decode_blocks > 0);
  controller.abort();
  const load = engine.load();
  assert.equal(load.num_requests_running, 0);
  assert.equal(load.active_decode_blocks, 0);
  await done;
  const last = items[items.length - 1]!;
  assert.equal(last.finish_reason, "cancelled");
  assert.equal(last.completion_usage?.completion_tokens, tokensOf(items));
  assert.equal(last.completion_usage?.prompt_tokens, 100);
  await engine.stop();
});

Deno.test("MockerEngine cancels a request whose consumer stops reading early", async () => {
  const clock = new ManualClock(0);
  const engine = engineOn(clock);
  await engine.start();
  const stream = engine.generate(
    testRequest("a", { length: 10 }, { maxTokens: 1000 }),
    new AbortController().signal,
  );
  const reading = (async () => {
    for await (const _ of stream) break;
  })();
  await waitUntil(() => clock.pendingSleepers === 1, "the first pass");
  await clock.advance(50);
  await reading;
  assert.equal(engine.load().num_requests_running, 0);
  await engine.stop();
});

Deno.test("MockerEngine publishes KV events when their pass ends and cleared on stop()", async () => {
  const clock = new ManualClock(0);
  const engine = engineOn(clock);
  const batches: (readonly KvCacheEvent[])[] = [];
  engine.onKvEvents((events) => batches.push(events));
  await engine.start();
  const { items, done } = consume(
    engine.generate(
      testRequest("a", { length: 128 }, { maxTokens: 1000 }),
      new AbortController().signal,
    ),
  );
  await waitUntil(() => clock.pendingSleepers === 1, "the first pass");
  assert.equal(batches.length, 0);
  await clock.advance(100);
  await waitUntil(() => batches.length > 0, "KV events");
  const stored = batches[0]![0]!.data;
  assert.ok(typeof stored === "object" && "stored" in stored);
  assert.equal(stored.stored.blocks.length, 2);
  await engine.stop();
  await done;
  assert.equal(items[items.length - 1]!.finish_reason, "cancelled");
  const lastBatch = batches[batches.length - 1]!;
  assert.equal(lastBatch[lastBatch.length - 1]!.data, "cleared");
  assert.throws(
    () => engine.generate(testRequest("b", { length: 5 }), new AbortController().signal),
    (err: unknown) => err instanceof DynamoError && err.errorClass === "unavailable",
  );
});

Deno.test("MockerEngine.start() takes startupTimeMs on the clock", async () => {
  const clock = new ManualClock(0);
  const engine = engineOn(clock, { options: { startupTimeMs: 500 } });
  assert.throws(
    () => engine.generate(testRequest("early", { length: 5 }), new AbortController().signal),
    (err: unknown) => err instanceof DynamoError && err.errorClass === "unavailable",
  );
  let started = false;
  const starting = engine.start().then((info) => {
    started = true;
    return info;
  });
  await waitUntil(() => clock.pendingSleepers === 1, "the startup sleep");
  await clock.advance(499);
  assert.equal(started, false);
  await clock.advance(1);
  const info = await starting;
  assert.equal(info.kind, "mocker");
  assert.equal(info.blockSizeTokens, 64);
  assert.equal(info.totalKvBlocks, 16384);
  await engine.stop();
});

Deno.test("MockerEngine.generate() with an aborted signal yields only a cancelled item", async () => {
  const engine = engineOn(new ManualClock(0));
  await engine.start();
  const controller = new AbortController();
  controller.abort();
  const { items, done } = consume(
    engine.generate(testRequest("a", { length: 5 }), controller.signal),
  );
  await done;
  assert.deepEqual(items.map((i) => i.finish_reason), ["cancelled"]);
  assert.equal(engine.load().num_requests_waiting, 0);
  await engine.stop();
});

Deno.test("MockerEngine.start() fails with unavailable when stop() comes during startup", async () => {
  const clock = new ManualClock(0);
  const engine = engineOn(clock, { options: { startupTimeMs: 500 } });
  const starting = engine.start();
  await engine.stop();
  await assert.rejects(
    starting,
    (err: unknown) => err instanceof DynamoError && err.errorClass === "unavailable",
  );
});

/** A 10-token prompt whose first block hash (block size 4) is >= 2^63: sent as a negative i64. */
function promptWithHighFirstHash(): number[] {
  const hasher = new BlockHasher();
  for (let base = 100;; base++) {
    const prompt = Array.from({ length: 10 }, (_, i) => base + i);
    if (hasher.localHashes(prompt, 4)[0]! >= 1n << 63n) return prompt;
  }
}

Deno.test("MockerEngine publishes its KV events in vLLM's ZMQ format when asked, and closes the socket on stop()", async () => {
  const engine = new MockerEngine({
    options: { speedupRatio: 1000, blockSizeTokens: 4 },
    vocabulary: TEST_VOCABULARY,
    zmqKvEvents: {
      endpoint: "tcp://127.0.0.1:0",
      topic: "kv",
      replayEndpoint: "tcp://127.0.0.1:0",
    },
  });
  assert.equal(engine.kvEventSource(), undefined, "bound at start()");
  const internal: KvCacheEvent[] = [];
  engine.onKvEvents((events) => internal.push(...events));
  await engine.start();
  const source = engine.kvEventSource()!;
  assert.equal(source.topic, "kv");
  assert.match(source.endpoint, /^tcp:\/\/127\.0\.0\.1:[1-9]\d*$/);
  try {
    const { done } = consume(
      engine.generate(
        testRequest("a", promptWithHighFirstHash(), { maxTokens: 3 }),
        new AbortController().signal,
      ),
    );
    await done;
    assert.ok(internal.length > 0, "onKvEvents still works");
    // Everything published so far, from vLLM's replay service (no subscriber could miss it).
    const replay = await requestVllmReplay(source.replayEndpoint!, 0n);
    assert.equal(replay.complete, true);
    assert.deepEqual(replay.batches.map((b) => b.seq), replay.batches.map((_, i) => BigInt(i)));
    const batches = replay.batches.map((b) => decodeVllmBatch(b.payload));
    assert.ok(batches.every((b) => b.dpRank === 0));
    const events = batches.flatMap((b) => b.events);
    const first = internal[0]!.data;
    assert.ok(typeof first === "object" && "stored" in first);
    assert.deepEqual(events[0], {
      type: "BlockStored",
      blockHashes: first.stored.blocks.map((b) => b.block_hash),
      parentBlockHash: null,
      tokenIds: first.stored.blocks.flatMap((b) => b.token_ids!),
      blockSize: 4,
      loraId: null,
      medium: "GPU",
      loraName: null,
      extraKeys: null,
      groupIdx: null,
      kvCacheSpecKind: null,
      kvCacheSpecSlidingWindow: null,
    });
    assert.equal(events.length, internal.length);
    // The first hash is >= 2^63, so it went out as int64 (0xd3) with the same 64 bits.
    const wire = new Uint8Array(9);
    wire[0] = 0xd3;
    new DataView(wire.buffer).setBigUint64(1, first.stored.blocks[0]!.block_hash);
    assert.ok(containsBytes(replay.batches[0]!.payload, wire), "signed i64 on the wire");
  } finally {
    await engine.stop();
  }
  // The port is free again: the PUB socket was closed. ZeroMQ closes a socket on its I/O
  // thread, so the port is released shortly after close(), not at once: retry for a while.
  await bindWithin(source.endpoint, 3000);
});

/** Binds a PUB socket on `endpoint` (then closes it), retrying EADDRINUSE until `timeoutMs`. */
async function bindWithin(endpoint: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const probe = new zmq.Publisher({ linger: 0 });
    try {
      await probe.bind(endpoint);
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
    } finally {
      probe.close();
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

function containsBytes(haystack: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}
