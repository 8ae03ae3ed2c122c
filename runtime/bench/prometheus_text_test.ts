import assert from "node:assert/strict";
import { parsePrometheusText, sumMetric } from "./prometheus_text.ts";

Deno.test("parsePrometheusText() reads samples with labels; sumMetric() filters and adds", () => {
  const text = [
    "# HELP dynamo_frontend_requests_total Requests",
    "# TYPE dynamo_frontend_requests_total counter",
    'dynamo_frontend_requests_total{model="a",status="success",error_type=""} 20',
    'dynamo_frontend_requests_total{model="b \\"q\\"",status="error",error_type="not_found"} 3',
    'dynamo_frontend_output_sequence_tokens_sum{model="a"} 320.5',
    "process_start_time_seconds 1.7e9 1700000000000",
    "garbage line",
  ].join("\n");
  const samples = parsePrometheusText(text);
  assert.equal(samples.length, 4);
  assert.equal(samples[1]!.labels["model"], 'b "q"');
  assert.equal(sumMetric(samples, "dynamo_frontend_requests_total"), 23);
  assert.equal(sumMetric(samples, "dynamo_frontend_requests_total", { status: "error" }), 3);
  assert.equal(sumMetric(samples, "dynamo_frontend_output_sequence_tokens_sum"), 320.5);
  assert.equal(sumMetric(samples, "process_start_time_seconds"), 1.7e9);
  assert.equal(sumMetric(samples, "missing"), 0);
});
