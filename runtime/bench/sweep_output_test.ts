import assert from "node:assert/strict";
import { summarize } from "../report/mod.ts";
import { parseReportJson } from "./report_json.ts";
import { pointPath, sweepAxis, sweepTable } from "./sweep_output.ts";

function report(label: string, extra: Record<string, unknown>) {
  return summarize([{
    ok: true,
    startMs: 0,
    firstTokenMs: 5,
    endMs: 10,
    inputTokens: 3,
    outputTokens: 2,
  }], {
    kind: "bench",
    label,
    workload: "w",
    config: {},
    wallS: 1,
    extra,
  });
}

Deno.test("pointPath() and sweepAxis() name sweep points by concurrency or rate", () => {
  const c8 = report("concurrency 8", { concurrency: 8, request_rate: null });
  const r2 = report("rate 2 req/s", { concurrency: null, request_rate: 2.5 });
  assert.equal(pointPath("/tmp/r.json", c8), "/tmp/r-c8.json");
  assert.equal(pointPath("/tmp/r", r2), "/tmp/r-r2.5.json");
  assert.equal(sweepAxis([c8, c8])?.label, "concurrency");
  assert.equal(sweepAxis([c8, c8])?.valueOf(c8), 8);
  assert.equal(sweepAxis([r2])?.valueOf(r2), 2.5);
  assert.equal(sweepAxis([c8, r2]), undefined);
  assert.match(sweepTable([c8, r2]), /^point\s+req\/s.*\nconcurrency 8\s+.*\nrate 2 req\/s\s+/);
});

Deno.test("parseReportJson() reads a report back and names the first bad field", () => {
  const r = report("concurrency 1", { concurrency: 1 });
  assert.deepEqual(parseReportJson(JSON.stringify(r), "r.json"), r);
  assert.throws(() => parseReportJson("{", "x.json"), /Invalid report "x.json": not JSON/);
  assert.throws(
    () => parseReportJson(JSON.stringify({ ...r, ttft_ms: { mean: "fast" } }), "y.json"),
    /Invalid report "y.json": ttft_ms.mean: /,
  );
});
