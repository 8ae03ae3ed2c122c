import type { Histogram, LatencyStats, Report, RequestSample, WorkerStats } from "./report.ts";

/** Histogram bounds: 60 log-spaced buckets from 0.1 ms to 1,000 s (about 4 per factor of 2). */
const BOUNDS_MS: readonly number[] = Array.from(
  { length: 60 },
  (_, i) => Number((0.1 * Math.pow(1e7, i / 59)).toPrecision(3)),
);

/** Counts `values` into the log-spaced buckets. */
export function histogram(values: ArrayLike<number>): Histogram {
  const counts = new Array<number>(BOUNDS_MS.length + 1).fill(0);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    let lo = 0;
    let hi = BOUNDS_MS.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (BOUNDS_MS[mid]! < v) lo = mid + 1;
      else hi = mid;
    }
    counts[lo]!++;
  }
  return { bounds_ms: BOUNDS_MS, counts };
}

/** Linear-interpolation percentile (numpy's default) of sorted values. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return 0;
  const rank = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (rank - lo);
}

/** Mean, p50/p90/p99, min, max. Values are copied and sorted. */
export function latencyStats(values: ArrayLike<number>): LatencyStats {
  const sorted = Float64Array.from(values).sort();
  let sum = 0;
  for (const v of sorted) sum += v;
  const n = sorted.length;
  const round = (v: number) => Math.round(v * 1000) / 1000;
  return {
    mean: round(n === 0 ? 0 : sum / n),
    p50: round(percentile(sorted, 50)),
    p90: round(percentile(sorted, 90)),
    p99: round(percentile(sorted, 99)),
    min: round(n === 0 ? 0 : sorted[0]!),
    max: round(n === 0 ? 0 : sorted[n - 1]!),
    count: n,
  };
}

export interface SummaryInfo {
  readonly kind: Report["kind"];
  readonly label: string;
  readonly workload: string;
  readonly config: Readonly<Record<string, unknown>>;
  readonly wallS: number;
  readonly sloTtftMs?: number;
  readonly sloItlMs?: number;
  /** Per-worker figures only the driver knows (peak KV use in the engines). */
  readonly workers?: readonly {
    worker: string;
    peakKvBlocks: number | null;
    kvTotalBlocks: number | null;
  }[];
  readonly extra?: Readonly<Record<string, unknown>>;
}

/** Builds the report from per-request samples. */
export function summarize(samples: readonly RequestSample[], info: SummaryInfo): Report {
  const ok = samples.filter((s) => s.ok);
  const errorsByType: Record<string, number> = {};
  for (const s of samples) {
    if (!s.ok) {
      errorsByType[s.errorType ?? "error"] = (errorsByType[s.errorType ?? "error"] ?? 0) + 1;
    }
  }
  // A loop, not Math.min(...spread): a spread of 100k+ arguments overflows the stack.
  let start = Infinity;
  let end = -Infinity;
  for (const s of samples) {
    if (s.startMs < start) start = s.startMs;
    if (s.endMs > end) end = s.endMs;
  }
  const durationS = samples.length === 0 ? 0 : Math.max(0, end - start) / 1000;
  const itls: number[] = [];
  for (const s of ok) if (s.itlMs !== undefined) { for (const v of s.itlMs) itls.push(v); }
  const ttfts = ok.filter((s) => s.firstTokenMs !== undefined).map((s) =>
    s.firstTokenMs! - s.startMs
  );
  const e2es = ok.map((s) => s.endMs - s.startMs);
  const inputTokens = ok.reduce((a, s) => a + s.inputTokens, 0);
  const outputTokens = ok.reduce((a, s) => a + s.outputTokens, 0);
  const withCache = ok.filter((s) => s.cachedTokens !== undefined);
  const hitRate = (list: readonly RequestSample[]) => {
    const prompt = list.reduce((a, s) => a + s.inputTokens, 0);
    return prompt === 0 ? null : list.reduce((a, s) => a + (s.cachedTokens ?? 0), 0) / prompt;
  };
  const rate = (n: number) => durationS === 0 ? 0 : n / durationS;
  return {
    kind: info.kind,
    label: info.label,
    workload: info.workload,
    config: info.config,
    requests: ok.length,
    errors: samples.length - ok.length,
    errors_by_type: errorsByType,
    input_tokens: inputTokens,
    output_tokens: outputTokens,
    ttft_ms: latencyStats(ttfts),
    itl_ms: latencyStats(itls),
    e2e_ms: latencyStats(e2es),
    distributions: { ttft_ms: histogram(ttfts), itl_ms: histogram(itls), e2e_ms: histogram(e2es) },
    throughput: {
      requests_per_s: rate(ok.length),
      output_tokens_per_s: rate(outputTokens),
      input_tokens_per_s: rate(inputTokens),
    },
    prefix_cache_hit_rate: withCache.length === 0 ? null : hitRate(withCache),
    per_worker: perWorker(ok, info, hitRate),
    goodput: goodput(ok, info, rate),
    duration_s: durationS,
    sim_duration_s: info.kind === "sim" ? durationS : null,
    wall_s: info.wallS,
    extra: info.extra ?? {},
  };
}

function perWorker(
  ok: readonly RequestSample[],
  info: SummaryInfo,
  hitRate: (list: readonly RequestSample[]) => number | null,
): WorkerStats[] {
  const byWorker = new Map<string, RequestSample[]>();
  for (const s of ok) {
    if (s.worker === undefined) continue;
    if (!byWorker.has(s.worker)) byWorker.set(s.worker, []);
    byWorker.get(s.worker)!.push(s);
  }
  const names = new Set([...byWorker.keys(), ...(info.workers ?? []).map((w) => w.worker)]);
  return [...names].sort().map((worker) => {
    const list = byWorker.get(worker) ?? [];
    const known = info.workers?.find((w) => w.worker === worker);
    return {
      worker,
      requests: list.length,
      peak_kv_blocks: known?.peakKvBlocks ?? null,
      kv_total_blocks: known?.kvTotalBlocks ?? null,
      prefix_cache_hit_rate: list.some((s) => s.cachedTokens !== undefined) ? hitRate(list) : null,
    };
  });
}

/** Requests whose TTFT and mean ITL both meet the SLOs (the usual goodput definition). */
function goodput(
  ok: readonly RequestSample[],
  info: SummaryInfo,
  rate: (n: number) => number,
): Report["goodput"] {
  if (info.sloTtftMs === undefined && info.sloItlMs === undefined) return null;
  const good = ok.filter((s) => {
    const ttft = s.firstTokenMs === undefined ? Infinity : s.firstTokenMs - s.startMs;
    if (info.sloTtftMs !== undefined && ttft > info.sloTtftMs) return false;
    if (info.sloItlMs !== undefined && s.itlMs !== undefined && s.itlMs.length > 0) {
      const meanItl = s.itlMs.reduce((a, b) => a + b, 0) / s.itlMs.length;
      if (meanItl > info.sloItlMs) return false;
    }
    return true;
  }).length;
  return {
    slo_ttft_ms: info.sloTtftMs ?? null,
    slo_itl_ms: info.sloItlMs ?? null,
    requests: good,
    requests_per_s: rate(good),
    fraction: ok.length === 0 ? 0 : good / ok.length,
  };
}
