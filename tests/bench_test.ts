/**
 * `dynamo bench` end to end: the real CLI drives the quickstart (frontend + two mocker
 * workers) and its report must agree with what the frontend's /metrics counted.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parsePrometheusText, sumMetric } from "../runtime/bench/mod.ts";
import type { Report } from "../runtime/report/mod.ts";
import { freePort, MODEL, QUICKSTART, runDynamo, RunningDynamo } from "./_harness.ts";

interface Counts {
  success: number;
  error: number;
  input: number;
  output: number;
}

async function frontendCounts(base: string): Promise<Counts> {
  const samples = parsePrometheusText(await (await fetch(`${base}/metrics`)).text());
  const requests = "dynamo_frontend_requests_total";
  return {
    success: sumMetric(samples, requests, { status: "success" }),
    error: sumMetric(samples, requests, { status: "error" }),
    input: sumMetric(samples, "dynamo_frontend_input_sequence_tokens_sum"),
    output: sumMetric(samples, "dynamo_frontend_output_sequence_tokens_sum"),
  };
}

function delta(after: Counts, before: Counts): Counts {
  return {
    success: after.success - before.success,
    error: after.error - before.error,
    input: after.input - before.input,
    output: after.output - before.output,
  };
}

async function readReport(path: string): Promise<Report> {
  return JSON.parse(await Deno.readTextFile(path)) as Report;
}

/** Runs `dynamo bench` and returns its report along with the frontend's counts during it. */
async function benchAgainst(base: string, args: string[], reportPath: string) {
  const before = await frontendCounts(base);
  const r = await runDynamo(["bench", "--url", base, ...args, "--report", reportPath]);
  const counted = delta(await frontendCounts(base), before);
  return { r, counted };
}

Deno.test({
  name: "dynamo bench against the quickstart reports what the frontend's /metrics counted",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const port = freePort();
    const base = `http://127.0.0.1:${port}`;
    const dir = await Deno.makeTempDir({ prefix: "dynamo-bench-" });
    const serve = new RunningDynamo([
      "serve",
      "--recipe",
      QUICKSTART,
      "--http-port",
      String(port),
      "--discovery-dir",
      join(dir, "discovery"),
    ]);
    try {
      await serve.waitForLine(/dynamo serve: ready: model .* on 2 worker/, 60_000);

      await t.step(
        "completions: counts agree, prompts and answers have exact lengths",
        async () => {
          const path = join(dir, "r.json");
          const { r, counted } = await benchAgainst(base, [
            "--model",
            MODEL,
            "--requests",
            "20",
            "--concurrency",
            "4",
            "--isl",
            "200",
            "--osl",
            "16",
          ], path);
          assert.equal(r.code, 0, r.stderr + r.stdout);
          const report = await readReport(path);
          assert.equal(report.kind, "bench");
          assert.equal(report.label, "concurrency 4");
          assert.equal(report.requests, 20);
          assert.equal(report.errors, 0);
          assert.deepEqual(
            {
              success: report.requests,
              error: report.errors,
              input: report.input_tokens,
              output: report.output_tokens,
            },
            counted,
          );
          assert.equal(report.input_tokens, 20 * 200);
          assert.equal(report.output_tokens, 20 * 16);
          assert.equal(report.ttft_ms.count, 20);
          assert.equal(report.itl_ms.count, 20 * 15);
          assert.ok(report.ttft_ms.p50 > 0 && report.e2e_ms.p50 >= report.ttft_ms.p50);
          assert.deepEqual(report.per_worker.map((w) => w.requests), [10, 10]);
          assert.equal(report.extra["concurrency"], 4);
          assert.equal(report.extra["endpoint"], "completions");
          assert.match(r.stdout, /requests 20, errors 0; input 4000 tokens, output 320 tokens/);
          assert.ok((await Deno.readTextFile(join(dir, "r.html"))).startsWith("<!doctype html>"));
        },
      );

      await t.step("multi-turn chat: counts agree with the frontend's", async () => {
        const path = join(dir, "chat.json");
        const { r, counted } = await benchAgainst(base, [
          "--endpoint",
          "chat",
          "--turns",
          "3",
          "--turn-isl",
          "20",
          "--requests",
          "9",
          "--concurrency",
          "3",
          "--isl",
          "100",
          "--osl",
          "8",
        ], path);
        assert.equal(r.code, 0, r.stderr + r.stdout);
        const report = await readReport(path);
        assert.equal(report.requests, 9);
        assert.deepEqual(
          {
            success: report.requests,
            error: report.errors,
            input: report.input_tokens,
            output: report.output_tokens,
          },
          counted,
        );
        // Later turns carry the earlier prompt and answer: more than 9 × 100 tokens in all.
        assert.ok(report.input_tokens > 9 * (100 + 20));
      });

      await t.step("a wrong model: every request is a 404, counted by type", async () => {
        const path = join(dir, "err.json");
        const { r, counted } = await benchAgainst(base, [
          "--model",
          "no-such-model",
          "--requests",
          "5",
          "--concurrency",
          "2",
        ], path);
        assert.equal(r.code, 1);
        assert.match(r.stdout, /first http_404: 404: The model "no-such-model" does not exist/);
        const report = await readReport(path);
        assert.equal(report.requests, 0);
        assert.equal(report.errors, 5);
        assert.deepEqual(report.errors_by_type, { http_404: 5 });
        assert.equal(counted.error, 5);
        assert.equal(counted.success, 0);
      });

      await t.step("a sweep writes a report per point and HTML with the line charts", async () => {
        const path = join(dir, "sweep.json");
        const r = await runDynamo([
          "bench",
          "--url",
          `${base}/v1`,
          "--concurrency",
          "1,4",
          "--requests",
          "8",
          "--isl",
          "64",
          "--osl",
          "8",
          "--report",
          path,
        ]);
        assert.equal(r.code, 0, r.stderr + r.stdout);
        const c1 = await readReport(join(dir, "sweep-c1.json"));
        const c4 = await readReport(join(dir, "sweep-c4.json"));
        assert.deepEqual([c1.requests, c4.requests], [8, 8]);
        assert.match(r.stdout, /concurrency 1 .*\n\s*concurrency 4 /);
        const html = await Deno.readTextFile(join(dir, "sweep.html"));
        assert.match(html, /Throughput against concurrency/);
        assert.match(html, /Latency against concurrency/);
        // 1 throughput line and 3 latency lines against concurrency, plus a CDF line per
        // point in each of the 3 latency distributions.
        assert.equal((html.match(/<polyline /g) ?? []).length, 4 + 3 * 2);

        const cmp = await runDynamo([
          "bench",
          "compare",
          join(dir, "sweep-c1.json"),
          join(dir, "sweep-c4.json"),
        ]);
        assert.equal(cmp.code, 0, cmp.stderr);
        const ratio = c4.throughput.requests_per_s / c1.throughput.requests_per_s;
        assert.match(
          cmp.stdout,
          new RegExp(`requests/s\\s+\\S+\\s+\\S+\\s+${ratio.toFixed(3).replace(".", "\\.")}x`),
        );
      });
    } finally {
      await serve.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test("dynamo bench refuses bad flags and bad reports with exit code 2", async () => {
  const r = await runDynamo(["bench", "--concurrency", "4,0", "--requests", "1"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /Invalid value for --concurrency: "4,0"/);
  const both = await runDynamo(["bench", "--concurrency", "4", "--request-rate", "2"]);
  assert.equal(both.code, 2);
  assert.match(both.stderr, /--concurrency .* or --request-rate .*, not both/);
  const dir = await Deno.makeTempDir({ prefix: "dynamo-bench-" });
  await Deno.writeTextFile(join(dir, "bad.json"), '{"kind":"bench"}');
  const cmp = await runDynamo(["bench", "compare", join(dir, "bad.json"), join(dir, "bad.json")]);
  assert.equal(cmp.code, 2);
  assert.match(cmp.stderr, /Invalid report ".*bad\.json": label/);
  await Deno.remove(dir, { recursive: true });
});
