import type { Report } from "../report/mod.ts";

/** `r.json` for the point `concurrency 8` is `r-c8.json`; for `rate 2 req/s`, `r-r2.json`. */
export function pointPath(path: string, report: Report): string {
  const c = report.extra["concurrency"];
  const r = report.extra["request_rate"];
  const tag = typeof c === "number" ? `c${c}` : typeof r === "number" ? `r${r}` : "trace";
  return /\.json$/.test(path) ? path.replace(/\.json$/, `-${tag}.json`) : `${path}-${tag}.json`;
}

/** The x axis of a sweep's HTML (concurrency or request rate), when every point has one. */
export function sweepAxis(
  reports: readonly Report[],
): { label: string; valueOf: (r: Report) => number } | undefined {
  const closed = reports.every((r) => typeof r.extra["concurrency"] === "number");
  const open = reports.every((r) => typeof r.extra["request_rate"] === "number");
  if (!closed && !open) return undefined;
  const key = closed ? "concurrency" : "request_rate";
  return {
    label: closed ? "concurrency" : "request rate (req/s)",
    valueOf: (r: Report) => r.extra[key] as number,
  };
}

/** One line per point: the figures a sweep is read for. */
export function sweepTable(reports: readonly Report[]): string {
  const header = [
    "point",
    "req/s",
    "out tok/s",
    "TTFT p50",
    "TTFT p99",
    "ITL p50",
    "E2E p50",
    "errors",
  ];
  const rows = reports.map((r) => [
    r.label,
    r.throughput.requests_per_s.toFixed(2),
    r.throughput.output_tokens_per_s.toFixed(1),
    `${r.ttft_ms.p50.toFixed(2)} ms`,
    `${r.ttft_ms.p99.toFixed(2)} ms`,
    `${r.itl_ms.p50.toFixed(3)} ms`,
    `${r.e2e_ms.p50.toFixed(2)} ms`,
    String(r.errors),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  return [header, ...rows].map((row) =>
    row.map((c, i) => i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)).join("  ")
  ).join("\n");
}
