import assert from "node:assert/strict";
import { formatComparison, formatSummary } from "./format.ts";
import { renderHtml } from "./html.ts";
import type { RequestSample } from "./report.ts";
import { latencyStats, percentile, summarize } from "./summarize.ts";

Deno.test("percentile() interpolates linearly between ranks, as numpy does", () => {
  const sorted = [10, 20, 30, 40];
  assert.equal(percentile(sorted, 50), 25);
  assert.equal(percentile(sorted, 90), 37);
  assert.equal(percentile(sorted, 0), 10);
  assert.equal(percentile(sorted, 100), 40);
  assert.equal(latencyStats([]).count, 0);
});

const samples: RequestSample[] = [
  {
    ok: true,
    startMs: 0,
    firstTokenMs: 100,
    endMs: 1000,
    itlMs: [10, 30],
    inputTokens: 100,
    outputTokens: 3,
    cachedTokens: 50,
    worker: "a",
  },
  {
    ok: true,
    startMs: 1000,
    firstTokenMs: 1300,
    endMs: 2000,
    itlMs: [20],
    inputTokens: 300,
    outputTokens: 2,
    cachedTokens: 0,
    worker: "b",
  },
  {
    ok: false,
    errorType: "overload",
    startMs: 1500,
    endMs: 1600,
    inputTokens: 10,
    outputTokens: 0,
  },
];

Deno.test("summarize() computes counts, rates, hit rate and goodput from samples", () => {
  const r = summarize(samples, {
    kind: "bench",
    label: "c=1",
    workload: "w",
    config: {},
    wallS: 2.5,
    sloTtftMs: 200,
  });
  assert.equal(r.requests, 2);
  assert.equal(r.errors, 1);
  assert.deepEqual(r.errors_by_type, { overload: 1 });
  assert.equal(r.duration_s, 2);
  assert.equal(r.throughput.requests_per_s, 1);
  assert.equal(r.throughput.output_tokens_per_s, 2.5);
  assert.equal(r.ttft_ms.mean, 200);
  assert.equal(r.itl_ms.count, 3);
  assert.equal(r.itl_ms.p50, 20);
  assert.equal(r.e2e_ms.max, 1000);
  assert.equal(r.prefix_cache_hit_rate, 50 / 400);
  assert.deepEqual(r.per_worker.map((w) => [w.worker, w.requests, w.prefix_cache_hit_rate]), [
    ["a", 1, 0.5],
    ["b", 1, 0],
  ]);
  assert.equal(r.goodput?.requests, 1);
  assert.equal(r.distributions.e2e_ms.counts.reduce((a, b) => a + b, 0), 2);
  const bounds = r.distributions.ttft_ms.bounds_ms;
  const i100 = bounds.findIndex((b) => b >= 100);
  assert.equal(
    r.distributions.ttft_ms.counts[i100],
    1,
    "100 ms lands in the first bucket bound >= 100",
  );
  assert.equal(r.sim_duration_s, null);
  assert.match(formatSummary(r), /requests 2, errors 1 \(overload 1\)/);
});

Deno.test("renderHtml() and formatComparison() show every report", () => {
  const a = summarize(samples, {
    kind: "sim",
    label: "round-robin",
    workload: "w",
    config: {},
    wallS: 1,
  });
  const b = { ...a, label: "kv", ttft_ms: { ...a.ttft_ms, p50: a.ttft_ms.p50 / 2 } };
  const html = renderHtml([a, b], {
    title: "Sweep <test>",
    x: { label: "x", valueOf: (r) => r.label.length },
  });
  assert.match(html, /^<!doctype html>/);
  assert.match(html, /Sweep &lt;test&gt;/);
  assert.equal((html.match(/<svg /g) ?? []).length, 8, "3 CDFs, 3 bar charts, 2 line charts");
  assert.ok(!html.includes("<script"));
  const table = formatComparison(a, b);
  assert.match(table, /TTFT p50 ms\s+200\s+100\s+0\.500x/);
});
