/** Mean and percentiles of a latency, in milliseconds. */
export interface LatencyStats {
  readonly mean: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly min: number;
  readonly max: number;
  /** Observations behind the figures. */
  readonly count: number;
}

/**
 * A latency distribution: counts of observations per log-spaced bucket; bucket i holds
 * values in (bounds_ms[i-1], bounds_ms[i]], the last one everything above.
 */
export interface Histogram {
  readonly bounds_ms: readonly number[];
  readonly counts: readonly number[];
}

export interface WorkerStats {
  /** Instance id (hex) for bench, `worker-N` for sim. */
  readonly worker: string;
  readonly requests: number;
  /** Highest KV blocks in use seen (sim: measured in the engine; bench: null). */
  readonly peak_kv_blocks: number | null;
  readonly kv_total_blocks: number | null;
  /** Cached prompt tokens / prompt tokens of the requests this worker served. */
  readonly prefix_cache_hit_rate: number | null;
}

/**
 * The report `dynamo sim` and `dynamo bench` both write (`--report FILE.json`), so a
 * simulation and a measurement of the same workload compare field by field.
 */
export interface Report {
  readonly kind: "sim" | "bench";
  /** What this point is, e.g. `kv, 8 workers` or `concurrency 16`. */
  readonly label: string;
  readonly workload: string;
  /** The settings behind the run (flags), for the record. */
  readonly config: Readonly<Record<string, unknown>>;
  /** Requests that completed. */
  readonly requests: number;
  /** Requests that failed. */
  readonly errors: number;
  readonly errors_by_type: Readonly<Record<string, number>>;
  readonly input_tokens: number;
  readonly output_tokens: number;
  readonly ttft_ms: LatencyStats;
  readonly itl_ms: LatencyStats;
  readonly e2e_ms: LatencyStats;
  /** Full distributions behind ttft_ms, itl_ms and e2e_ms (plotted as CDFs in the HTML). */
  readonly distributions: {
    readonly ttft_ms: Histogram;
    readonly itl_ms: Histogram;
    readonly e2e_ms: Histogram;
  };
  readonly throughput: {
    readonly requests_per_s: number;
    readonly output_tokens_per_s: number;
    readonly input_tokens_per_s: number;
  };
  /** Cached prompt tokens / prompt tokens, as the engines reported them. */
  readonly prefix_cache_hit_rate: number | null;
  readonly per_worker: readonly WorkerStats[];
  /** Requests meeting both SLOs, when SLOs were given. */
  readonly goodput: {
    readonly slo_ttft_ms: number | null;
    readonly slo_itl_ms: number | null;
    readonly requests: number;
    readonly requests_per_s: number;
    readonly fraction: number;
  } | null;
  /** Span from the first request sent to the last answer: simulated time for sim. */
  readonly duration_s: number;
  /** Simulated duration (sim only; equals duration_s there), null for bench. */
  readonly sim_duration_s: number | null;
  /** Wall-clock time the run took. */
  readonly wall_s: number;
  /** Kind-specific extras (sim: prefix_cache_block_hit_rate, passes; bench: concurrency). */
  readonly extra: Readonly<Record<string, unknown>>;
}

/** What a driver records for each request. */
export interface RequestSample {
  readonly ok: boolean;
  /** Error class or reason when not ok. */
  readonly errorType?: string;
  readonly startMs: number;
  /** When the first output token arrived. */
  readonly firstTokenMs?: number;
  readonly endMs: number;
  /** Gaps between consecutive output tokens (ms); chunks of n tokens contribute n gaps. */
  readonly itlMs?: readonly number[];
  readonly inputTokens: number;
  readonly outputTokens: number;
  readonly cachedTokens?: number;
  readonly worker?: string;
}
