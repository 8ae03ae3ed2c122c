import assert from "node:assert/strict";
import { MockerCore } from "./mocker_core.ts";
import type { MockerOptionsInput } from "./mocker_options.ts";
import { drain, TEST_VOCABULARY, testRequest } from "./_test_helpers.ts";

function core(options: MockerOptionsInput): MockerCore {
  return new MockerCore({ options, vocabulary: TEST_VOCABULARY });
}

Deno.test("VllmScheduler.schedule() respects max_num_seqs and max_num_batched_tokens every pass", () => {
  const c = core({ maxNumSeqs: 4, maxNumBatchedTokens: 100, blockSizeTokens: 16 });
  for (let i = 0; i < 10; i++) {
    c.addRequest(testRequest(`r${i}`, { length: 60, base: 1000 * i }, { maxTokens: 5 }), 0);
  }
  let maxRunning = 0;
  let maxTokens = 0;
  let now = 0;
  while (c.hasWork()) {
    const { pass, durationMs } = c.step(now);
    now += durationMs;
    assert.ok(pass.runningRequests <= 4, `running ${pass.runningRequests}`);
    assert.ok(pass.scheduledTokens <= 100, `scheduled ${pass.scheduledTokens}`);
    maxRunning = Math.max(maxRunning, pass.runningRequests);
    maxTokens = Math.max(maxTokens, pass.scheduledTokens);
    c.checkInvariants();
  }
  // The limits are reached, not just respected trivially.
  assert.equal(maxTokens, 100);
  assert.equal(maxRunning, 4);
});

Deno.test("VllmScheduler.schedule() runs no more than max_num_seqs requests at once", () => {
  const c = core({ maxNumSeqs: 2, maxNumBatchedTokens: 8192 });
  for (let i = 0; i < 5; i++) c.addRequest(testRequest(`r${i}`, { length: 10, base: 100 * i }), 0);
  const first = c.step(0);
  assert.equal(first.pass.runningRequests, 2);
  assert.equal(first.pass.waitingRequests, 3);
  assert.equal(first.pass.prefillRequests, 2);
});

Deno.test("VllmScheduler.schedule() chunks a long prompt over ceil(isl / budget) passes", () => {
  const c = core({ maxNumBatchedTokens: 256 });
  c.addRequest(testRequest("long", { length: 1000 }, { maxTokens: 3 }), 0);
  const prefillTokens: number[] = [];
  let firstTokenPass = 0;
  for (let pass = 1; pass <= 5 && firstTokenPass === 0; pass++) {
    const step = c.step(0);
    prefillTokens.push(step.pass.prefillTokens);
    if (step.outputs.some((o) => o.tokenIds.length > 0)) firstTokenPass = pass;
  }
  assert.equal(firstTokenPass, Math.ceil(1000 / 256));
  assert.deepEqual(prefillTokens, [256, 256, 256, 232]);
});

Deno.test("VllmScheduler.schedule() blocks a prompt larger than the remaining budget without chunked prefill", () => {
  const c = core({ maxNumBatchedTokens: 256, enableChunkedPrefill: false });
  c.addRequest(testRequest("a", { length: 200, base: 0 }, { maxTokens: 2 }), 0);
  c.addRequest(testRequest("b", { length: 200, base: 5000 }, { maxTokens: 2 }), 0);
  const first = c.step(0);
  assert.equal(first.pass.prefillRequests, 1);
  assert.equal(first.pass.prefillTokens, 200);
  assert.equal(first.pass.waitingRequests, 1);
  const second = c.step(first.durationMs);
  assert.equal(second.pass.prefillRequests, 1);
  assert.equal(second.pass.prefillTokens, 200);
  assert.equal(second.pass.scheduledTokens, 201); // b's prompt plus a's decode token
});

Deno.test("VllmScheduler.schedule() reuses the prefix cache for a repeated prompt", () => {
  for (const len of [200, 192, 64, 65]) {
    const c = core({ blockSizeTokens: 64 });
    c.addRequest(testRequest("first", { length: len }, { maxTokens: 2 }), 0);
    const a = drain(c).results.get("first")!;
    assert.equal(a.final?.usage?.prompt_tokens_details?.cached_tokens, 0);
    c.addRequest(testRequest("second", { length: len }, { maxTokens: 2 }), 0);
    const step = c.step(0);
    const expected = Math.floor((len - 1) / 64) * 64;
    assert.equal(step.pass.prefillTokens, len - expected, `len ${len}`);
    const b = drain(c).results.get("second")!;
    assert.equal(b.final?.usage?.prompt_tokens_details?.cached_tokens, expected, `len ${len}`);
  }
});

Deno.test("VllmScheduler.schedule() without prefix caching reports no cached tokens", () => {
  const c = core({ enablePrefixCaching: false });
  c.addRequest(testRequest("a", { length: 200 }, { maxTokens: 1 }), 0);
  drain(c);
  c.addRequest(testRequest("b", { length: 200 }, { maxTokens: 1 }), 0);
  const b = drain(c).results.get("b")!;
  assert.equal(b.final?.usage?.prompt_tokens_details?.cached_tokens, 0);
});

function preemptionRun(mode: "lifo" | "fifo"): { firstPreempted: string; core: MockerCore } {
  // 8 blocks of 4 tokens; each request needs up to 5 blocks, so three cannot run together.
  const c = core({ numGpuBlocks: 8, blockSizeTokens: 4, preemptionMode: mode });
  for (const [i, id] of ["a", "b", "c"].entries()) {
    c.addRequest(testRequest(id, { length: 8, base: 100 * (i + 1) }, { maxTokens: 12 }), 0);
  }
  let firstPreempted = "";
  let now = 0;
  const tokens = new Map<string, number>();
  const finals = new Map<string, string>();
  for (let steps = 0; c.hasWork(); steps++) {
    assert.ok(steps < 1000, "livelock");
    const step = c.step(now);
    now += step.durationMs;
    c.checkInvariants();
    if (firstPreempted === "" && step.pass.preemptedRequestIds.length > 0) {
      firstPreempted = step.pass.preemptedRequestIds[0]!;
    }
    for (const out of step.outputs) {
      tokens.set(out.requestId, (tokens.get(out.requestId) ?? 0) + out.tokenIds.length);
      if (out.finishReason) {
        finals.set(out.requestId, out.finishReason);
        assert.equal(out.usage?.completion_tokens, 12);
      }
    }
  }
  assert.ok(c.preemptionsTotal > 0);
  assert.deepEqual(Object.fromEntries(tokens), { a: 12, b: 12, c: 12 });
  assert.deepEqual(Object.fromEntries(finals), { a: "length", b: "length", c: "length" });
  assert.deepEqual(c.load().active_decode_blocks, 0);
  return { firstPreempted, core: c };
}

Deno.test("VllmScheduler preempts the newest request under KV pressure (lifo) and all finish", () => {
  assert.equal(preemptionRun("lifo").firstPreempted, "c");
});

Deno.test("VllmScheduler preempts the oldest request with fifo and all finish", () => {
  assert.equal(preemptionRun("fifo").firstPreempted, "a");
});

Deno.test("VllmScheduler finishes with length a request that cannot fit even alone", () => {
  // 2 blocks of 4 tokens: the prompt fills them, and the first output token needs a third.
  const c = core({ numGpuBlocks: 2, blockSizeTokens: 4 });
  c.addRequest(testRequest("big", { length: 8 }, { maxTokens: 10 }), 0);
  const r = drain(c, { check: true }).results.get("big")!;
  assert.equal(r.final?.finishReason, "length");
  assert.equal(r.final?.usage?.completion_tokens, 1);
  assert.equal(r.tokenIds.length, 1);
});

Deno.test("VllmScheduler emits the first token in the pass that completes the prompt", () => {
  const c = core({});
  c.addRequest(testRequest("a", { length: 10 }, { maxTokens: 3 }), 0);
  const first = c.step(0);
  assert.equal(first.outputs.length, 1);
  assert.equal(first.outputs[0]!.tokenIds.length, 1);
  assert.equal(first.pass.prefillRequests, 1);
  assert.equal(first.pass.decodeRequests, 1);
  const second = c.step(first.durationMs);
  assert.equal(second.pass.prefillRequests, 0);
  assert.equal(second.pass.scheduledTokens, 1);
});

Deno.test("VllmScheduler finishes a max_tokens 0 request after prefill with no tokens", () => {
  const c = core({});
  c.addRequest(testRequest("p", { length: 30 }, { maxTokens: 0 }), 0);
  const step = c.step(0);
  assert.deepEqual(step.outputs.map((o) => [o.tokenIds.length, o.finishReason]), [[0, "length"]]);
  assert.equal(step.pass.prefillTokens, 30);
  assert.equal(c.hasWork(), false);
});

Deno.test("VllmScheduler generates from an empty prompt", () => {
  const c = core({});
  c.addRequest(testRequest("e", [], { maxTokens: 3 }), 0);
  const r = drain(c, { check: true }).results.get("e")!;
  assert.equal(r.tokenIds.length, 3);
  assert.equal(r.final?.usage?.prompt_tokens, 0);
});

Deno.test("VllmScheduler gives a preempted request's budget back within the same pass", () => {
  // 4 blocks of 4 tokens, budget 8, fifo: in pass 2 "a" (decoding) has been scheduled when
  // "b"'s prefill chunk runs out of blocks, so "a" is preempted and its token refunded.
  const c = core({
    numGpuBlocks: 4,
    blockSizeTokens: 4,
    maxNumBatchedTokens: 8,
    preemptionMode: "fifo",
  });
  c.addRequest(testRequest("a", { length: 4, base: 100 }, { maxTokens: 20 }), 0);
  c.addRequest(testRequest("b", { length: 12, base: 500 }, { maxTokens: 20 }), 0);
  const first = c.step(0);
  assert.equal(first.pass.scheduledTokens, 8);
  const second = c.step(first.durationMs);
  assert.deepEqual(second.pass.preemptedRequestIds, ["a"]);
  assert.equal(second.pass.prefillTokens, 8);
  assert.equal(second.pass.scheduledTokens, 8);
  assert.deepEqual(second.outputs.map((o) => o.requestId), ["b"]);
  c.checkInvariants();
});
