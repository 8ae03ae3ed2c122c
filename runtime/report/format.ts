import type { LatencyStats, Report } from "./report.ts";

const ms = (v: number) => v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(1)} ms`;

function lat(name: string, s: LatencyStats): string {
  return `  ${name.padEnd(5)} mean ${ms(s.mean).padStart(9)}  p50 ${ms(s.p50).padStart(9)}  p90 ${
    ms(s.p90).padStart(9)
  }  p99 ${ms(s.p99).padStart(9)}`;
}

/** A readable summary of one report, for stdout. */
export function formatSummary(r: Report): string {
  const lines = [
    `${r.kind === "sim" ? "Simulation" : "Benchmark"}: ${r.label}`,
    `  workload: ${r.workload}`,
    `  requests ${r.requests}, errors ${r.errors}${
      r.errors > 0
        ? ` (${Object.entries(r.errors_by_type).map(([k, v]) => `${k} ${v}`).join(", ")})`
        : ""
    }; input ${r.input_tokens} tokens, output ${r.output_tokens} tokens`,
    lat("TTFT", r.ttft_ms),
    lat("ITL", r.itl_ms),
    lat("E2E", r.e2e_ms),
    `  throughput ${r.throughput.requests_per_s.toFixed(2)} req/s, ${
      r.throughput.output_tokens_per_s.toFixed(1)
    } output tokens/s`,
  ];
  if (r.prefix_cache_hit_rate !== null) {
    lines.push(`  prefix cache hit rate ${(r.prefix_cache_hit_rate * 100).toFixed(2)}%`);
  }
  if (r.goodput !== null) {
    lines.push(
      `  goodput ${r.goodput.requests_per_s.toFixed(2)} req/s (${
        (r.goodput.fraction * 100).toFixed(1)
      }% within TTFT ${r.goodput.slo_ttft_ms ?? "-"} ms, ITL ${r.goodput.slo_itl_ms ?? "-"} ms)`,
    );
  }
  if (r.per_worker.length > 0) {
    lines.push(
      `  per worker: ${
        r.per_worker.map((w) =>
          `${w.worker} ${w.requests} req${
            w.peak_kv_blocks === null ? "" : `, peak KV ${w.peak_kv_blocks}`
          }`
        ).join("; ")
      }`,
    );
  }
  lines.push(
    `  ${
      r.sim_duration_s !== null
        ? `simulated ${r.sim_duration_s.toFixed(1)} s in`
        : `ran ${r.duration_s.toFixed(1)} s,`
    } ${r.wall_s.toFixed(2)} s wall`,
  );
  return lines.join("\n");
}

/** A side-by-side table of two reports with ratios (B / A). */
export function formatComparison(a: Report, b: Report): string {
  const rows: [string, number | null, number | null][] = [
    ["requests", a.requests, b.requests],
    ["errors", a.errors, b.errors],
    ["TTFT mean ms", a.ttft_ms.mean, b.ttft_ms.mean],
    ["TTFT p50 ms", a.ttft_ms.p50, b.ttft_ms.p50],
    ["TTFT p99 ms", a.ttft_ms.p99, b.ttft_ms.p99],
    ["ITL mean ms", a.itl_ms.mean, b.itl_ms.mean],
    ["ITL p99 ms", a.itl_ms.p99, b.itl_ms.p99],
    ["E2E mean ms", a.e2e_ms.mean, b.e2e_ms.mean],
    ["E2E p99 ms", a.e2e_ms.p99, b.e2e_ms.p99],
    ["requests/s", a.throughput.requests_per_s, b.throughput.requests_per_s],
    ["output tokens/s", a.throughput.output_tokens_per_s, b.throughput.output_tokens_per_s],
    ["prefix hit rate", a.prefix_cache_hit_rate, b.prefix_cache_hit_rate],
    ["goodput req/s", a.goodput?.requests_per_s ?? null, b.goodput?.requests_per_s ?? null],
  ];
  const fmt = (v: number | null) =>
    v === null ? "-" : Number.isInteger(v) ? String(v) : v.toFixed(3);
  const body = rows.map(([name, x, y]) => {
    const ratio = x === null || y === null || x === 0 ? "-" : `${(y / x).toFixed(3)}x`;
    return [name, fmt(x), fmt(y), ratio];
  });
  const header = ["metric", `A: ${a.label}`, `B: ${b.label}`, "B/A"];
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  return [header, ...body].map((r) =>
    r.map((c, i) => i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)).join("  ")
  ).join("\n");
}
