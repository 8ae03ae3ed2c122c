import assert from "node:assert/strict";
import { decodeTimeMs, prefillTimeMs } from "../engines/mod.ts";
import { DEFAULT_KV_ROUTER_CONFIG, type KvRouterConfig } from "../router/mod.ts";
import { syntheticWorkload, traceWorkload, type Workload } from "../workload/mod.ts";
import {
  type SimConfig,
  simReport,
  simulate,
  type SimWorkload,
  simWorkloadOf,
  traceSimWorkload,
} from "./mod.ts";
import { SIM_PROMPT_VOCABULARY } from "./sim_vocabulary.ts";

/** Equal up to float rounding (virtual times are sums of pass durations). */
function assertClose(actual: number, expected: number, what = "value"): void {
  assert.ok(Math.abs(actual - expected) < 1e-9, `${what}: ${actual} != ${expected}`);
}

function config(overrides: Partial<SimConfig> = {}): SimConfig {
  return {
    workers: 1,
    engine: {},
    routerMode: "round-robin",
    kvRouter: DEFAULT_KV_ROUTER_CONFIG,
    seed: 1,
    ignoreEos: true,
    ...overrides,
  };
}

function kvConfig(router: Partial<KvRouterConfig>, overrides: Partial<SimConfig> = {}): SimConfig {
  return config({
    routerMode: "kv",
    kvRouter: { ...DEFAULT_KV_ROUTER_CONFIG, ...router },
    ...overrides,
  });
}

/** `n` one-turn sessions of `promptTokens` distinct tokens, all arriving at `atMs`. */
function burst(n: number, promptTokens: number, maxTokens: number, atMs = 0): SimWorkload {
  return simWorkloadOf({
    description: "burst",
    mode: { kind: "open" },
    sessions: Array.from({ length: n }, (_, i) => ({
      id: `b${i}`,
      arrivalMs: atMs,
      turns: [{
        newTokens: Array.from({ length: promptTokens }, (_, k) => 1000 + i * promptTokens + k),
        maxTokens,
        delayMs: 0,
      }],
    })),
  });
}

function synthetic(spec: Partial<Parameters<typeof syntheticWorkload>[0]>): Workload {
  return syntheticWorkload({
    sessions: 10,
    isl: { kind: "fixed", value: 300 },
    osl: { kind: "fixed", value: 20 },
    sharedPrefixRatio: 0,
    prefixGroups: 1,
    turns: 1,
    turnIsl: { kind: "fixed", value: 50 },
    interTurnDelayMs: 0,
    arrival: { kind: "poisson", ratePerS: 20 },
    vocabulary: SIM_PROMPT_VOCABULARY,
    seed: 3,
    ...spec,
  }, "test");
}

Deno.test("simulate(): a lone request's TTFT is its prefill pass and its ITLs are decode passes", async () => {
  // 126 prompt tokens in 64-token blocks: 2 blocks, a third from the third output token on.
  const result = await simulate(burst(1, 126, 5, 1000), config());
  const [s] = result.samples;
  assert.ok(s !== undefined && s.ok);
  const total = 16384;
  // The pass that computes the whole prompt also samples the first token.
  assertClose(s.firstTokenMs! - s.startMs, prefillTimeMs(1, 126, 0) + decodeTimeMs(2, total));
  assert.equal(s.startMs, 1000);
  // Decode pass k computes token 126 + k, so it holds ceil((126 + k) / 64) blocks.
  const decodes = [1, 2, 3, 4].map((k) => decodeTimeMs(Math.ceil((126 + k) / 64), total));
  assert.equal(s.itlMs!.length, 4);
  s.itlMs!.forEach((itl, k) => assertClose(itl, decodes[k]!, `ITL ${k}`));
  assertClose(s.endMs, s.firstTokenMs! + decodes.reduce((a, b) => a + b, 0));
  assert.equal(s.outputTokens, 5);
  assert.equal(result.passes, 5);
  assert.equal(result.endMs, s.endMs);
});

Deno.test("simulate(): requests arriving together share passes (continuous batching)", async () => {
  const result = await simulate(burst(3, 100, 4), config());
  assert.equal(result.samples.length, 3);
  const firsts = new Set(result.samples.map((s) => s.firstTokenMs));
  assert.equal(firsts.size, 1, "one prefill pass computes all three prompts");
  assert.equal(result.passes, 4);
  assertClose(result.samples[0]!.firstTokenMs!, prefillTimeMs(3, 100, 0) + decodeTimeMs(6, 16384));
});

Deno.test("simulate(): closed loop keeps at most C sessions in flight and starts one as one ends", async () => {
  const workload = simWorkloadOf(
    synthetic({ sessions: 12, arrival: { kind: "closed", concurrency: 3 } }),
  );
  const result = await simulate(workload, config({ workers: 2 }));
  assert.equal(result.samples.length, 12);
  assert.equal(result.maxSessionsInFlight, 3);
  // Check against the request intervals themselves (one-turn sessions): an end and a start
  // at the same instant are a hand-over, so ends sort first.
  const edges = result.samples.flatMap((s) => [[s.startMs, 1], [s.endMs, -1]]);
  edges.sort((a, b) => a[0]! - b[0]! || a[1]! - b[1]!);
  let inFlight = 0;
  let max = 0;
  for (const [, d] of edges) max = Math.max(max, inFlight += d!);
  assert.equal(max, 3);
  const starts = result.samples.map((s) => s.startMs).sort((a, b) => a - b);
  const ends = result.samples.map((s) => s.endMs).sort((a, b) => a - b);
  assert.deepEqual(starts.slice(3), ends.slice(0, 9), "each later session starts as one ends");
});

Deno.test("simulate(): each turn's prompt is the previous prompt, its answer and the new tokens", async () => {
  const workload = synthetic({
    sessions: 3,
    turns: 3,
    interTurnDelayMs: 250,
    osl: { kind: "uniform", min: 10, max: 40 },
  });
  const result = await simulate(simWorkloadOf(workload), config());
  const byId = new Map(result.samples.map((s) => [s.requestId, s]));
  const bs = 64;
  for (const session of workload.sessions) {
    for (let k = 1; k < 3; k++) {
      const prev = byId.get(`${session.id}#${k - 1}`)!;
      const cur = byId.get(`${session.id}#${k}`)!;
      assert.equal(
        cur.inputTokens,
        prev.inputTokens + prev.outputTokens + session.turns[k]!.newTokens.length,
      );
      assert.equal(prev.outputTokens, session.turns[k - 1]!.maxTokens);
      assert.equal(cur.startMs, prev.endMs + 250);
      // The engine still holds the previous sequence's full blocks (all but the last token's
      // KV is computed); the history matches them token for token only if it holds exactly
      // the answer the engine produced.
      const computed = prev.inputTokens + prev.outputTokens - 1;
      const expected = bs *
        Math.min(Math.floor(computed / bs), Math.floor((cur.inputTokens - 1) / bs));
      assert.equal(cur.cachedTokens, expected, `${cur.requestId} cached tokens`);
    }
  }
});

Deno.test("simulate() is deterministic: the same seed gives the same report", async () => {
  const workload = simWorkloadOf(synthetic({
    sessions: 16,
    turns: 2,
    sharedPrefixRatio: 0.5,
    prefixGroups: 2,
    isl: { kind: "normal", mean: 400, stddev: 100 },
  }));
  const run = async (seed: number) => {
    const result = await simulate(workload, kvConfig({}, { workers: 3, seed }));
    const report = simReport(result, { label: "x", workload: "w", config: {}, wallS: 0 });
    return JSON.stringify(report);
  };
  const a = await run(5);
  assert.equal(await run(5), a);
  assert.notEqual(await run(6), a, "another seed gives other outputs and tie-breaks");
});

Deno.test("simulate(): KV routing follows engine KV events, or predicts caches without them", async () => {
  const workload = simWorkloadOf(
    synthetic({ sessions: 12, sharedPrefixRatio: 0.8, prefixGroups: 2 }),
  );
  const withEvents = await simulate(workload, kvConfig({}, { workers: 4 }));
  assert.ok(withEvents.kvEventsApplied > 0);
  const approx = await simulate(workload, kvConfig({ useKvEvents: false }, { workers: 4 }));
  assert.equal(approx.kvEventsApplied, 0);
  const cached = (r: typeof approx) => r.samples.reduce((a, s) => a + (s.cachedTokens ?? 0), 0);
  const rr = await simulate(workload, config({ workers: 4 }));
  assert.ok(cached(withEvents) > cached(rr), "prefix-aware routing reuses more of the cache");
  assert.ok(cached(approx) > cached(rr));
});

Deno.test("simulate(): a request the router refuses counts as an overloaded error", async () => {
  // Busy as soon as any prefill is booked: the second of two simultaneous requests is shed.
  const result = await simulate(
    burst(2, 100, 3),
    kvConfig({ activePrefillTokensThreshold: 0, queueThreshold: null }),
  );
  const report = simReport(result, { label: "x", workload: "w", config: {}, wallS: 0 });
  assert.equal(report.requests, 1);
  assert.equal(report.errors, 1);
  assert.deepEqual(report.errors_by_type, { overloaded: 1 });
  assert.deepEqual(report.extra["errors_by_reason"], { all_workers_busy: 1 });
});

Deno.test("simulate(): the KV router's queue parks requests and admits them as load is released", async () => {
  // Park whenever any prefill is booked: the second and third requests wait for the first
  // one's first token, then the queue admits both at that instant (admission does not book).
  const result = await simulate(burst(3, 100, 3), kvConfig({ queueThreshold: 1e-9 }));
  assert.equal(result.routerParked, 2);
  assert.equal(result.samples.filter((s) => s.ok).length, 3);
  const [first, second, third] = [...result.samples].sort((a, b) =>
    a.firstTokenMs! - b.firstTokenMs! || a.requestId.localeCompare(b.requestId)
  );
  assert.equal(first!.requestId, "b0#0");
  assertClose(first!.firstTokenMs!, prefillTimeMs(1, 100, 0) + decodeTimeMs(2, 16384));
  // They join the first request's next pass: its decode (2 blocks) plus their two prompts.
  const admitted = first!.firstTokenMs! + prefillTimeMs(2, 100, 0) + decodeTimeMs(6, 16384);
  assertClose(second!.firstTokenMs!, admitted);
  assertClose(third!.firstTokenMs!, admitted);
  assert.equal(second!.startMs, 0, "TTFT includes the time parked");
});

Deno.test("simulate(): a prompt longer than the context length is an invalid_request error", async () => {
  const result = await simulate(burst(2, 600, 2), config({ engine: { contextLengthTokens: 512 } }));
  const report = simReport(result, { label: "x", workload: "w", config: {}, wallS: 0 });
  assert.deepEqual(report.errors_by_type, { invalid_request: 2 });
  assert.deepEqual(report.extra["errors_by_reason"], { context_length_exceeded: 2 });
});

Deno.test("simReport(): block and token hit rates, per-worker requests and peak KV", async () => {
  // Two identical 200-token prompts, one after the other, on one worker: the second reuses
  // the first's 3 full blocks (192 tokens) and recomputes its partial fourth block.
  const prompt = Array.from({ length: 200 }, (_, i) => 5000 + i);
  const workload = simWorkloadOf({
    description: "twice",
    mode: { kind: "closed", concurrency: 1 },
    sessions: [0, 1].map((i) => ({
      id: `t${i}`,
      arrivalMs: 0,
      turns: [{ newTokens: prompt, maxTokens: 2, delayMs: 0 }],
    })),
  });
  const result = await simulate(workload, config({ engine: { numGpuBlocks: 100 } }));
  const report = simReport(result, {
    label: "x",
    workload: "w",
    config: {},
    wallS: 1.5,
    sloTtftMs: 1e6,
  });
  assert.equal(report.kind, "sim");
  assert.equal(report.prefix_cache_hit_rate, 192 / 400);
  assert.equal(report.extra["prefix_cache_block_hit_rate"], 3 / 8);
  assert.deepEqual(report.per_worker, [{
    worker: "worker-1",
    requests: 2,
    peak_kv_blocks: 4,
    kv_total_blocks: 100,
    prefix_cache_hit_rate: 192 / 400,
  }]);
  assert.equal(report.sim_duration_s, result.endMs / 1000);
  assert.equal(report.wall_s, 1.5);
  assert.equal(report.goodput?.requests, 2);
});

Deno.test("traceSimWorkload() builds the same sessions as traceWorkload(), lazily", () => {
  const lines = [
    { timestamp: 0, input_length: 700, output_length: 5, hash_ids: [1, 2] },
    { timestamp: 40, input_length: 1100, output_length: 0, hash_ids: [1, 2, 3] },
    { timestamp: 40, input_length: 30, output_length: 9, hash_ids: [7] },
  ];
  const options = { blockSize: 512, arrivalSpeedup: 4, description: "t", maxRequests: 2 };
  const eager = traceWorkload(lines, options);
  const lazy = traceSimWorkload(lines, options);
  assert.equal(lazy.sessions.length, 2);
  assert.deepEqual(lazy.mode, { kind: "open" });
  for (let i = 0; i < 2; i++) {
    const e = eager.sessions[i]!;
    const l = lazy.sessions[i]!;
    assert.equal(l.id, e.id);
    assert.equal(l.arrivalMs, e.arrivalMs);
    assert.equal(l.turnCount, 1);
    assert.deepEqual(l.turn(0), e.turns[0]);
  }
});
