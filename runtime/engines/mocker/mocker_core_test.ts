import assert from "node:assert/strict";
import { DynamoError } from "../../errors/mod.ts";
import { BlockHasher } from "../../tokens/mod.ts";
import { MockerCore } from "./mocker_core.ts";
import type { MockerOptionsInput } from "./mocker_options.ts";
import { decodeTimeMs, prefillTimeMs } from "./timing.ts";
import { drain, TEST_VOCABULARY, testRequest } from "./_test_helpers.ts";

function core(options: MockerOptionsInput = {}): MockerCore {
  return new MockerCore({ options, vocabulary: TEST_VOCABULARY });
}

function assertDynamoError(fn: () => unknown, errorClass: string, reason?: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof DynamoError, String(err));
    assert.equal(err.errorClass, errorClass);
    if (reason !== undefined) assert.equal(err.reason, reason);
    return true;
  });
}

Deno.test("MockerCore.step() takes prefill plus decode time, scaled by the speedups", () => {
  const c = core({ speedupRatio: 2, decodeSpeedupRatio: 5 });
  c.addRequest(testRequest("a", { length: 100 }, { maxTokens: 2 }), 0);
  const first = c.step(1000);
  // 100 prompt tokens in 2 blocks of 64; the prompt completes and decodes in the same pass.
  const prefill = prefillTimeMs(1, 100, 0);
  const decode = decodeTimeMs(2, 16384);
  assert.equal(first.pass.prefillMs, prefill);
  assert.equal(first.pass.decodeMs, decode);
  assert.equal(first.durationMs, prefill / 2 + decode / 10);
  assert.equal(first.pass.startMs, 1000);
  assert.equal(first.pass.endMs, 1000 + first.durationMs);
  const second = c.step(first.pass.endMs);
  assert.equal(second.pass.prefillMs, 0);
  assert.equal(second.durationMs, decodeTimeMs(2, 16384) / 10);
});

Deno.test("MockerCore.step() is idle and instant with no work", () => {
  const c = core();
  const step = c.step(5);
  assert.equal(step.durationMs, 0);
  assert.deepEqual(step.outputs, []);
  assert.equal(c.hasWork(), false);
});

Deno.test("MockerCore.step() emits Stored events with Dynamo block hashes", () => {
  const c = core({ blockSizeTokens: 4 });
  const prompt = [5, 6, 7, 8, 9, 10, 11, 12, 13];
  c.addRequest(testRequest("a", prompt, { maxTokens: 1 }), 0);
  const { kvEvents } = c.step(0);
  const hasher = new BlockHasher();
  const local = hasher.localHashes(prompt, 4);
  const seq = hasher.sequenceHashes(local);
  assert.equal(kvEvents.length, 1);
  const data = kvEvents[0]!.data;
  assert.ok(typeof data === "object" && "stored" in data);
  assert.equal(data.stored.parent_hash, null);
  assert.deepEqual(data.stored.blocks, [
    { block_hash: seq[0], tokens_hash: local[0], token_ids: [5, 6, 7, 8] },
    { block_hash: seq[1], tokens_hash: local[1], token_ids: [9, 10, 11, 12] },
  ]);
  assert.equal(kvEvents[0]!.event_id, 0);
});

Deno.test("MockerCore.load() tracks prefill tokens, blocks and queues", () => {
  const c = core({ blockSizeTokens: 16, maxNumBatchedTokens: 64 });
  c.addRequest(testRequest("a", { length: 100, base: 0 }, { maxTokens: 4 }), 0);
  c.addRequest(testRequest("b", { length: 50, base: 500 }, { maxTokens: 4 }), 0);
  assert.deepEqual(c.load(), {
    active_decode_blocks: 0,
    active_prefill_tokens: 150,
    kv_used_blocks: 0,
    kv_total_blocks: 16384,
    num_requests_running: 0,
    num_requests_waiting: 2,
  });
  c.step(0); // 64 tokens of a
  const load = c.load();
  assert.equal(load.active_prefill_tokens, 86);
  assert.equal(load.active_decode_blocks, 4);
  assert.equal(load.num_requests_running, 1);
  assert.equal(load.num_requests_waiting, 1);
  drain(c);
  assert.equal(c.load().active_prefill_tokens, 0);
  assert.equal(c.load().active_decode_blocks, 0);
});

Deno.test("MockerCore.cancel() frees the request's blocks and returns a cancelled output", () => {
  const c = core({ blockSizeTokens: 16 });
  c.addRequest(testRequest("a", { length: 40 }, { maxTokens: 100 }), 0);
  c.step(0);
  c.step(10);
  assert.equal(c.load().active_decode_blocks, 3);
  const out = c.cancel("a");
  assert.equal(out?.finishReason, "cancelled");
  assert.equal(out?.usage?.completion_tokens, 2);
  assert.equal(out?.usage?.prompt_tokens, 40);
  assert.equal(c.load().active_decode_blocks, 0);
  assert.equal(c.load().num_requests_running, 0);
  assert.equal(c.hasWork(), false);
  assert.equal(c.cancel("a"), undefined);
  c.checkInvariants();
});

Deno.test("MockerCore.addRequest() rejects requests it can never serve", () => {
  const c = core({ contextLengthTokens: 100, numGpuBlocks: 4, blockSizeTokens: 16 });
  assertDynamoError(
    () => c.addRequest(testRequest("long", { length: 101 }), 0),
    "invalid_request",
    "context_length_exceeded",
  );
  assertDynamoError(
    () => c.addRequest(testRequest("kv", { length: 65 }), 0),
    "invalid_request",
    "exceeds_kv_capacity",
  );
  assertDynamoError(
    () => c.addRequest(testRequest("empty", [], { maxTokens: 0 }), 0),
    "invalid_request",
    "empty_request",
  );
  c.addRequest(testRequest("dup", { length: 5 }), 0);
  assertDynamoError(
    () => c.addRequest(testRequest("dup", { length: 5 }), 0),
    "invalid_request",
    "duplicate_request_id",
  );
});

Deno.test("MockerCore.addRequest() rejects a prompt over the batch budget without chunked prefill", () => {
  const c = core({ enableChunkedPrefill: false, maxNumBatchedTokens: 32 });
  assertDynamoError(
    () => c.addRequest(testRequest("a", { length: 33 }), 0),
    "invalid_request",
    "exceeds_batch_budget",
  );
});

Deno.test("MockerCore.addRequest() refuses with overloaded once the waiting queue is full", () => {
  const c = core({ maxWaitingRequests: 3 });
  for (let i = 0; i < 3; i++) c.addRequest(testRequest(`r${i}`, { length: 5 }), 0);
  assertDynamoError(
    () => c.addRequest(testRequest("r3", { length: 5 }), 0),
    "overloaded",
    "queue_full",
  );
  c.step(0); // admits them, emptying the waiting queue
  c.addRequest(testRequest("r3", { length: 5 }), 0);
});

Deno.test("MockerCore caps output at the context length", () => {
  const c = core({ contextLengthTokens: 20 });
  c.addRequest(testRequest("a", { length: 15 }, { maxTokens: 100 }), 0);
  const r = drain(c).results.get("a")!;
  assert.equal(r.tokenIds.length, 5);
  assert.equal(r.final?.finishReason, "length");
});

Deno.test("MockerCore.reset() cancels everything and emits cleared", () => {
  const c = core();
  c.addRequest(testRequest("a", { length: 100 }), 0);
  c.addRequest(testRequest("b", { length: 100, base: 900 }), 0);
  c.step(0);
  const { outputs, kvEvents } = c.reset();
  assert.deepEqual(outputs.map((o) => [o.requestId, o.finishReason]).sort(), [["a", "cancelled"], [
    "b",
    "cancelled",
  ]]);
  assert.equal(kvEvents[kvEvents.length - 1]!.data, "cleared");
  assert.equal(c.hasWork(), false);
  assert.equal(c.load().kv_used_blocks, 0);
});

Deno.test("MockerCore rejects invalid options naming the field", () => {
  assert.throws(
    () => core({ speedupRatio: 0 }),
    (err: unknown) =>
      err instanceof DynamoError && err.param === "speedupRatio" &&
      /speedupRatio = 0/.test(err.message),
  );
});
