import assert from "node:assert/strict";
import { perRequestTokenRate, toSample } from "./bench_run.ts";

const ok = {
  status: "ok" as const,
  startMs: 100,
  endMs: 400,
  firstTokenMs: 200,
  chunkTimesMs: [200, 250, 300, 400],
  text: "",
  usage: { promptTokens: 12, completionTokens: 5, cachedTokens: 4 },
  worker: "ab",
};

Deno.test("toSample() takes counts from usage, and from what was sent and seen without it", () => {
  const s = toSample(ok, 10);
  assert.equal(s.ok, true);
  assert.equal(s.inputTokens, 12);
  assert.equal(s.outputTokens, 5);
  assert.equal(s.cachedTokens, 4);
  assert.equal(s.worker, "ab");
  // 5 tokens in 4 chunks: the extra token splits the first gap.
  assert.deepEqual(s.itlMs, [25, 25, 50, 100]);
  const bare = toSample({ ...ok, usage: undefined }, 10);
  assert.equal(bare.inputTokens, 10);
  assert.equal(bare.outputTokens, 4);
  assert.equal(bare.cachedTokens, undefined);
  const failed = toSample({ ...ok, status: "error", errorType: "http_503" }, 10);
  assert.deepEqual([failed.ok, failed.errorType, failed.inputTokens], [false, "http_503", 0]);
});

Deno.test("perRequestTokenRate() is each request's speed after its first token", () => {
  const samples = [toSample(ok, 10), toSample({ ...ok, endMs: 300 }, 10)];
  // (5 - 1) tokens over 200 ms and over 100 ms.
  const r = perRequestTokenRate(samples);
  assert.deepEqual([r.count, r.min, r.max], [2, 20, 40]);
  assert.equal(perRequestTokenRate([]).count, 0);
});
