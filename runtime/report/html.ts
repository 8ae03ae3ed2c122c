import type { Histogram, LatencyStats, Report } from "./report.ts";

const COLORS = [
  "#1f77b4",
  "#d62728",
  "#2ca02c",
  "#ff7f0e",
  "#9467bd",
  "#8c564b",
  "#e377c2",
  "#17becf",
];

function esc(text: string): string {
  return text.replace(
    /[&<>"]/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!,
  );
}

/** A grouped bar chart: one group per metric, one bar per report. */
function barChart(
  title: string,
  groups: string[],
  series: { name: string; values: number[] }[],
  unit: string,
): string {
  const w = 640;
  const h = 260;
  const pad = { l: 60, r: 10, t: 30, b: 50 };
  const max = Math.max(1e-9, ...series.flatMap((s) => s.values));
  const gw = (w - pad.l - pad.r) / groups.length;
  const bw = (gw * 0.8) / series.length;
  const y = (v: number) => pad.t + (h - pad.t - pad.b) * (1 - v / max);
  let svg = `<svg viewBox="0 0 ${w} ${h}" width="${w}" height="${h}" role="img"><title>${
    esc(title)
  }</title>`;
  svg += `<text x="${w / 2}" y="18" text-anchor="middle" font-weight="bold">${esc(title)}</text>`;
  for (let t = 0; t <= 4; t++) {
    const v = (max * t) / 4;
    svg += `<line x1="${pad.l}" x2="${w - pad.r}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`;
    svg += `<text x="${pad.l - 6}" y="${y(v) + 4}" text-anchor="end" font-size="11">${
      v.toPrecision(3)
    }</text>`;
  }
  groups.forEach((g, gi) => {
    series.forEach((s, si) => {
      const x = pad.l + gi * gw + gw * 0.1 + si * bw;
      const v = s.values[gi]!;
      svg +=
        `<rect x="${x}" y="${y(v)}" width="${bw}" height="${y(0) - y(v)}" fill="${
          COLORS[si % COLORS.length]
        }">` +
        `<title>${esc(s.name)} ${esc(g)}: ${v.toFixed(2)} ${unit}</title></rect>`;
    });
    svg += `<text x="${pad.l + gi * gw + gw / 2}" y="${
      h - pad.b + 16
    }" text-anchor="middle" font-size="12">${esc(g)}</text>`;
  });
  svg += `<text x="14" y="${h / 2}" transform="rotate(-90 14 ${
    h / 2
  })" text-anchor="middle" font-size="11">${esc(unit)}</text>`;
  return svg + "</svg>";
}

/** A line chart of several series against a numeric x. */
function lineChart(
  title: string,
  xLabel: string,
  xs: number[],
  series: { name: string; values: number[] }[],
  unit: string,
): string {
  const w = 640;
  const h = 260;
  const pad = { l: 60, r: 10, t: 30, b: 44 };
  const minX = Math.min(...xs);
  const maxX = Math.max(...xs);
  const maxY = Math.max(1e-9, ...series.flatMap((s) => s.values));
  const x = (v: number) =>
    pad.l + (w - pad.l - pad.r) * (maxX === minX ? 0.5 : (v - minX) / (maxX - minX));
  const y = (v: number) => pad.t + (h - pad.t - pad.b) * (1 - v / maxY);
  let svg = `<svg viewBox="0 0 ${w} ${h}" width="${w}" height="${h}" role="img"><title>${
    esc(title)
  }</title>`;
  svg += `<text x="${w / 2}" y="18" text-anchor="middle" font-weight="bold">${esc(title)}</text>`;
  for (let t = 0; t <= 4; t++) {
    const v = (maxY * t) / 4;
    svg += `<line x1="${pad.l}" x2="${w - pad.r}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`;
    svg += `<text x="${pad.l - 6}" y="${y(v) + 4}" text-anchor="end" font-size="11">${
      v.toPrecision(3)
    }</text>`;
  }
  for (const v of xs) {
    svg += `<text x="${x(v)}" y="${
      h - pad.b + 16
    }" text-anchor="middle" font-size="11">${v}</text>`;
  }
  svg += `<text x="${w / 2}" y="${h - 8}" text-anchor="middle" font-size="12">${
    esc(xLabel)
  }</text>`;
  series.forEach((s, si) => {
    const color = COLORS[si % COLORS.length];
    const points = xs.map((v, i) => `${x(v)},${y(s.values[i]!)}`).join(" ");
    svg += `<polyline fill="none" stroke="${color}" stroke-width="2" points="${points}"/>`;
    xs.forEach((v, i) => {
      svg += `<circle cx="${x(v)}" cy="${y(s.values[i]!)}" r="3" fill="${color}"><title>${
        esc(s.name)
      } @ ${v}: ${s.values[i]!.toFixed(2)} ${unit}</title></circle>`;
    });
    svg += `<text x="${w - pad.r - 4}" y="${
      pad.t + 14 * (si + 1)
    }" text-anchor="end" font-size="11" fill="${color}">${esc(s.name)}</text>`;
  });
  svg += `<text x="14" y="${h / 2}" transform="rotate(-90 14 ${
    h / 2
  })" text-anchor="middle" font-size="11">${esc(unit)}</text>`;
  return svg + "</svg>";
}

/** Cumulative distributions on a log x axis, one line per report. */
function cdfChart(
  title: string,
  reports: readonly Report[],
  pick: (r: Report) => Histogram | undefined,
): string {
  const w = 640;
  const h = 260;
  const pad = { l: 50, r: 10, t: 30, b: 44 };
  const series = reports.map((r) => ({ name: r.label, hist: pick(r) })).filter((s) =>
    s.hist !== undefined && s.hist.counts.some((c) => c > 0)
  );
  if (series.length === 0) return "";
  const used = series.flatMap((s) =>
    s.hist!.counts.flatMap((
      c,
      i,
    ) => (c > 0 ? [s.hist!.bounds_ms[Math.min(i, s.hist!.bounds_ms.length - 1)]!] : []))
  );
  const minX = Math.log10(Math.max(0.1, Math.min(...used) / 2));
  const maxX = Math.log10(Math.max(...used) * 1.2);
  const x = (v: number) =>
    pad.l + (w - pad.l - pad.r) * ((Math.log10(v) - minX) / Math.max(1e-9, maxX - minX));
  const y = (f: number) => pad.t + (h - pad.t - pad.b) * (1 - f);
  let svg = `<svg viewBox="0 0 ${w} ${h}" width="${w}" height="${h}" role="img"><title>${
    esc(title)
  }</title>`;
  svg += `<text x="${w / 2}" y="18" text-anchor="middle" font-weight="bold">${esc(title)}</text>`;
  for (const f of [0, 0.25, 0.5, 0.75, 0.9, 1]) {
    svg += `<line x1="${pad.l}" x2="${w - pad.r}" y1="${y(f)}" y2="${y(f)}" stroke="#ddd"/>`;
    svg += `<text x="${pad.l - 6}" y="${y(f) + 4}" text-anchor="end" font-size="11">${f}</text>`;
  }
  for (let e = Math.ceil(minX); e <= Math.floor(maxX); e++) {
    const v = Math.pow(10, e);
    svg += `<line x1="${x(v)}" x2="${x(v)}" y1="${pad.t}" y2="${h - pad.b}" stroke="#eee"/>`;
    svg += `<text x="${x(v)}" y="${h - pad.b + 16}" text-anchor="middle" font-size="11">${
      v >= 1000 ? `${v / 1000} s` : `${v} ms`
    }</text>`;
  }
  series.forEach((s, si) => {
    const total = s.hist!.counts.reduce((a, b) => a + b, 0);
    let cum = 0;
    const pts: string[] = [];
    s.hist!.counts.forEach((c, i) => {
      const bound = s.hist!.bounds_ms[Math.min(i, s.hist!.bounds_ms.length - 1)]!;
      if (cum === 0 && c === 0) return;
      cum += c;
      pts.push(`${x(bound)},${y(cum / total)}`);
    });
    const color = COLORS[si % COLORS.length];
    svg += `<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts.join(" ")}"/>`;
    svg += `<text x="${pad.l + 6}" y="${pad.t + 14 * (si + 1)}" font-size="11" fill="${color}">${
      esc(s.name)
    }</text>`;
  });
  svg += `<text x="${w / 2}" y="${
    h - 8
  }" text-anchor="middle" font-size="12">latency (log scale); y: fraction of requests at or below</text>`;
  return svg + "</svg>";
}

function latencyBars(
  title: string,
  reports: readonly Report[],
  pick: (r: Report) => LatencyStats,
): string {
  return barChart(
    title,
    ["mean", "p50", "p90", "p99"],
    reports.map((r) => {
      const s = pick(r);
      return { name: r.label, values: [s.mean, s.p50, s.p90, s.p99] };
    }),
    "ms",
  );
}

function table(reports: readonly Report[]): string {
  const cols: [string, (r: Report) => string][] = [
    ["point", (r) => esc(r.label)],
    ["requests", (r) => String(r.requests)],
    ["errors", (r) => String(r.errors)],
    ["TTFT p50 / p99 ms", (r) => `${r.ttft_ms.p50.toFixed(1)} / ${r.ttft_ms.p99.toFixed(1)}`],
    ["ITL p50 / p99 ms", (r) => `${r.itl_ms.p50.toFixed(2)} / ${r.itl_ms.p99.toFixed(2)}`],
    ["E2E p50 / p99 ms", (r) => `${r.e2e_ms.p50.toFixed(1)} / ${r.e2e_ms.p99.toFixed(1)}`],
    ["req/s", (r) => r.throughput.requests_per_s.toFixed(2)],
    ["out tok/s", (r) => r.throughput.output_tokens_per_s.toFixed(1)],
    [
      "prefix hit",
      (r) =>
        r.prefix_cache_hit_rate === null ? "-" : `${(r.prefix_cache_hit_rate * 100).toFixed(2)}%`,
    ],
    ["goodput req/s", (r) => r.goodput === null ? "-" : r.goodput.requests_per_s.toFixed(2)],
    ["wall s", (r) => r.wall_s.toFixed(1)],
  ];
  return `<table><thead><tr>${cols.map(([h]) => `<th>${h}</th>`).join("")}</tr></thead><tbody>${
    reports.map((r) => `<tr>${cols.map(([, f]) => `<td>${f(r)}</td>`).join("")}</tr>`).join("")
  }</tbody></table>`;
}

/**
 * A self-contained HTML page (inline SVG, no scripts, no external assets) comparing
 * reports: a table, latency bars, and, when the points have a numeric x (concurrency,
 * worker count), throughput and latency against it.
 */
export function renderHtml(
  reports: readonly Report[],
  options: { title: string; x?: { label: string; valueOf: (r: Report) => number } },
): string {
  const charts = [
    cdfChart("TTFT distribution", reports, (r) => r.distributions?.ttft_ms),
    cdfChart("Inter-token latency distribution", reports, (r) => r.distributions?.itl_ms),
    cdfChart("End-to-end latency distribution", reports, (r) => r.distributions?.e2e_ms),
    latencyBars("Time to first token", reports, (r) => r.ttft_ms),
    latencyBars("Inter-token latency", reports, (r) => r.itl_ms),
    latencyBars("End-to-end latency", reports, (r) => r.e2e_ms),
  ];
  if (options.x !== undefined && reports.length > 1) {
    const xs = reports.map(options.x.valueOf);
    charts.push(
      lineChart(`Throughput against ${options.x.label}`, options.x.label, xs, [
        { name: "output tokens/s", values: reports.map((r) => r.throughput.output_tokens_per_s) },
      ], "tokens/s"),
      lineChart(`Latency against ${options.x.label}`, options.x.label, xs, [
        { name: "TTFT p50", values: reports.map((r) => r.ttft_ms.p50) },
        { name: "TTFT p99", values: reports.map((r) => r.ttft_ms.p99) },
        { name: "E2E p50", values: reports.map((r) => r.e2e_ms.p50) },
      ], "ms"),
    );
  }
  return `<!doctype html><html><head><meta charset="utf-8"><title>${
    esc(options.title)
  }</title><style>
body{font-family:system-ui,sans-serif;margin:24px;color:#222}table{border-collapse:collapse;margin:16px 0}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}th:first-child,td:first-child{text-align:left}
svg{margin:8px 16px 8px 0;background:#fafafa;border:1px solid #eee}
</style></head><body><h1>${esc(options.title)}</h1><p>${esc(reports[0]?.workload ?? "")}</p>${
    table(reports)
  }<div>${charts.join("")}</div><details><summary>Reports (JSON)</summary><pre>${
    esc(JSON.stringify(reports, null, 2))
  }</pre></details></body></html>\n`;
}
