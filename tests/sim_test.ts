/** `dynamo sim` end to end: the CLI on small workloads, its JSON reports and the sweep page. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ROOT, runDynamo } from "./_harness.ts";

/** The first 500 lines of the Mooncake conversation trace (see testdata/README.md). */
const CONVERSATION_TRACE = join(ROOT, "tests", "testdata", "conversation_trace_head500.jsonl");

/**
 * A small Mooncake-format trace: 7 conversations of 3 turns, interleaved in time; each turn
 * repeats its conversation's earlier blocks and adds one, so turns share a growing prefix.
 * (An odd count, so round-robin sends each conversation's turns to different workers.)
 */
function conversationTrace(): { text: string; lines: number; inputTokens: number } {
  const rows: string[] = [];
  let inputTokens = 0;
  for (let turn = 0; turn < 3; turn++) {
    for (let c = 0; c < 7; c++) {
      const ids = Array.from({ length: turn + 2 }, (_, k) => c * 100 + k);
      const inputLength = ids.length * 512 - 100;
      inputTokens += inputLength;
      rows.push(JSON.stringify({
        timestamp: turn * 20_000 + c * 500,
        input_length: inputLength,
        output_length: 20,
        hash_ids: ids,
      }));
    }
  }
  return { text: rows.join("\n") + "\n", lines: rows.length, inputTokens };
}

const LATENCY_KEYS = ["mean", "p50", "p90", "p99"] as const;

/** Checks the fields the issue promises in every report. */
function assertReportShape(r: Record<string, unknown>): void {
  for (const key of ["requests", "errors", "prefix_cache_hit_rate", "sim_duration_s", "wall_s"]) {
    assert.equal(typeof r[key], "number", key);
  }
  for (const key of ["ttft_ms", "itl_ms", "e2e_ms"]) {
    const stats = r[key] as Record<string, number>;
    for (const k of LATENCY_KEYS) {
      assert.ok(Number.isFinite(stats[k]) && stats[k]! > 0, `${key}.${k}`);
    }
    assert.ok(stats["p50"]! <= stats["p90"]! && stats["p90"]! <= stats["p99"]!, key);
  }
  const throughput = r["throughput"] as Record<string, number>;
  assert.ok(throughput["requests_per_s"]! > 0);
  assert.ok(throughput["output_tokens_per_s"]! > 0);
  assert.ok(Array.isArray(r["per_worker"]));
  assert.equal(r["kind"], "sim");
  assert.ok((r["sim_duration_s"] as number) > 0);
}

async function readJson(path: string): Promise<Record<string, unknown>> {
  return JSON.parse(await Deno.readTextFile(path));
}

Deno.test("dynamo sim runs a synthetic multi-turn workload and writes its report", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "r.json");
    const r = await runDynamo([
      "sim",
      ...["--requests", "12", "--isl", "uniform:300:600", "--osl", "16", "--turns", "2"],
      ...["--turn-isl", "64", "--shared-prefix-ratio", "0.5", "--prefix-groups", "2"],
      ...["--request-rate", "20", "--workers", "2", "--router-mode", "kv", "--seed", "4"],
      ...["--slo-ttft-ms", "1000", "--slo-itl-ms", "50", "--report", path],
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Simulation: kv, 2 workers/);
    assert.match(r.stdout, /block-level prefix hit rate/);
    const report = await readJson(path);
    assertReportShape(report);
    assert.equal(report["requests"], 24);
    assert.equal(report["errors"], 0);
    assert.equal(report["output_tokens"], 24 * 16);
    const perWorker = report["per_worker"] as { requests: number; peak_kv_blocks: number }[];
    assert.equal(perWorker.length, 2);
    assert.equal(perWorker.reduce((a, w) => a + w.requests, 0), 24);
    assert.ok(perWorker.every((w) => w.peak_kv_blocks > 0));
    const rate = report["prefix_cache_hit_rate"] as number;
    assert.ok(rate > 0 && rate < 1, "later turns and shared prefixes hit the cache");
    assert.equal((report["goodput"] as { slo_ttft_ms: number }).slo_ttft_ms, 1000);
    assert.equal((report["config"] as { workers: number }).workers, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("dynamo sim replays a trace, and a router-mode sweep writes a report per point and an HTML page", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const trace = conversationTrace();
    const tracePath = join(dir, "trace.jsonl");
    await Deno.writeTextFile(tracePath, trace.text);
    const one = join(dir, "one.json");
    const single = await runDynamo([
      ...["sim", "--trace", tracePath, "--workers", "2", "--router-mode", "round-robin"],
      ...["--report", one],
    ]);
    assert.equal(single.code, 0, single.stderr);
    const report = await readJson(one);
    assertReportShape(report);
    assert.equal(report["requests"], trace.lines);
    assert.equal(report["input_tokens"], trace.inputTokens);
    assert.equal(report["output_tokens"], trace.lines * 20);
    assert.match(
      report["workload"] as string,
      /trace trace\.jsonl \(21 requests, 512-token blocks\)/,
    );

    const out = join(dir, "sweep");
    const sweep = await runDynamo([
      ...["sim", "--trace", tracePath, "--workers", "2", "--block-size", "512"],
      ...["--sweep-router-modes", "kv,round-robin", "--report-dir", out],
    ]);
    assert.equal(sweep.code, 0, sweep.stderr);
    assert.match(
      sweep.stdout,
      /Simulation: kv, 2 workers[\s\S]*Simulation: round-robin, 2 workers/,
    );
    const kv = await readJson(join(out, "kv-2w.json"));
    const rr = await readJson(join(out, "round-robin-2w.json"));
    assertReportShape(kv);
    assertReportShape(rr);
    // Round-robin scatters each conversation over both workers; KV routing keeps it on the
    // worker that holds its prefix.
    assert.ok(
      (kv["prefix_cache_hit_rate"] as number) > (rr["prefix_cache_hit_rate"] as number),
      `kv ${kv["prefix_cache_hit_rate"]} vs round-robin ${rr["prefix_cache_hit_rate"]}`,
    );
    const html = await Deno.readTextFile(join(out, "sweep.html"));
    assert.match(html, /^<!doctype html>/);
    assert.match(html, /<svg/);
    assert.match(html, /kv, 2 workers/);
    assert.match(html, /round-robin, 2 workers/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "dynamo sim replays a slice of conversation_trace.jsonl with its own token counts",
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const path = join(dir, "r.json");
      const r = await runDynamo([
        ...["sim", "--trace", CONVERSATION_TRACE, "--max-requests", "60", "--workers", "2"],
        ...["--router-mode", "kv", "--report", path],
      ]);
      assert.equal(r.code, 0, r.stderr);
      const lines = (await Deno.readTextFile(CONVERSATION_TRACE)).split("\n").slice(0, 60)
        .map((l) => JSON.parse(l) as { input_length: number; output_length: number });
      const report = await readJson(path);
      assertReportShape(report);
      assert.equal(report["requests"], 60);
      assert.equal(report["input_tokens"], lines.reduce((a, l) => a + l.input_length, 0));
      assert.equal(
        report["output_tokens"],
        lines.reduce((a, l) => a + Math.max(1, l.output_length), 0),
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("dynamo sim rejects bad usage with exit code 2 naming the flag and value", async () => {
  const cases: [string[], RegExp][] = [
    [["sim"], /Missing workload: give --trace FILE or --requests N/],
    [["sim", "--workers", "0", "--requests", "1", "--concurrency", "1"], /--workers: "0"/],
    [
      ["sim", "--requests", "5", "--isl", "big", "--concurrency", "1"],
      /--isl: "big"/,
    ],
    [["sim", "--trace", "/nonexistent/t.jsonl"], /--trace: "\/nonexistent\/t\.jsonl"/],
    [
      ["sim", "--requests", "5", "--concurrency", "1", "--sweep-router-modes", "kv,fast"],
      /--sweep-router-modes: "kv,fast"/,
    ],
  ];
  for (const [args, re] of cases) {
    const r = await runDynamo(args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, re);
  }
});
