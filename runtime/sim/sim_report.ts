import { type Report, summarize } from "../report/mod.ts";
import type { SimResult } from "./sim_config.ts";

export interface SimReportInfo {
  /** What this point is, e.g. `kv, 8 workers`. */
  readonly label: string;
  readonly workload: string;
  /** The settings behind the run, for the record. */
  readonly config: Readonly<Record<string, unknown>>;
  /** Wall-clock seconds the simulation took (measured by the caller, never by the core). */
  readonly wallS: number;
  readonly sloTtftMs?: number;
  readonly sloItlMs?: number;
}

/**
 * The shared report (kind "sim") of a simulation. `prefix_cache_hit_rate` is token-level:
 * cached prompt tokens / prompt tokens, as the engines reported them in usage. `extra`
 * adds the block-level rate, cached full blocks / prompt blocks (a partial last block
 * counts as a prompt block that never hits), and the simulator's own counters.
 */
export function simReport(result: SimResult, info: SimReportInfo): Report {
  const bs = result.blockSizeTokens;
  let promptBlocks = 0;
  let cachedBlocks = 0;
  const errorsByReason: Record<string, number> = {};
  for (const s of result.samples) {
    if (s.ok) {
      promptBlocks += Math.ceil(s.inputTokens / bs);
      cachedBlocks += Math.floor((s.cachedTokens ?? 0) / bs);
    } else {
      const reason = s.errorReason ?? s.errorType ?? "error";
      errorsByReason[reason] = (errorsByReason[reason] ?? 0) + 1;
    }
  }
  return summarize(result.samples, {
    kind: "sim",
    label: info.label,
    workload: info.workload,
    config: info.config,
    wallS: info.wallS,
    ...(info.sloTtftMs === undefined ? {} : { sloTtftMs: info.sloTtftMs }),
    ...(info.sloItlMs === undefined ? {} : { sloItlMs: info.sloItlMs }),
    workers: result.workers.map((w) => ({
      worker: w.worker,
      peakKvBlocks: w.peakKvBlocks,
      kvTotalBlocks: w.kvTotalBlocks,
    })),
    extra: {
      prefix_cache_block_hit_rate: promptBlocks === 0 ? null : cachedBlocks / promptBlocks,
      prompt_blocks: promptBlocks,
      cached_blocks: cachedBlocks,
      block_size_tokens: bs,
      engine_passes: result.passes,
      kv_events_applied: result.kvEventsApplied,
      router_parked_requests: result.routerParked,
      preemptions: result.workers.reduce((a, w) => a + w.preemptions, 0),
      max_sessions_in_flight: result.maxSessionsInFlight,
      errors_by_reason: errorsByReason,
      per_worker_passes: Object.fromEntries(result.workers.map((w) => [w.worker, w.passes])),
    },
  });
}

/** The sim-only figures of a report, as a line to print after `formatSummary`. */
export function formatSimExtra(r: Report): string {
  const e = r.extra;
  const rate = e["prefix_cache_block_hit_rate"] as number | null;
  return `  block-level prefix hit rate ${rate === null ? "-" : `${(rate * 100).toFixed(2)}%`} (${
    e["cached_blocks"]
  } of ${e["prompt_blocks"]} blocks); ${e["engine_passes"]} engine passes, ${
    e["kv_events_applied"]
  } KV events applied, ${e["router_parked_requests"]} requests parked by the router`;
}
