import {
  Counter,
  exponentialBuckets,
  Gauge,
  Histogram,
  type Registry,
} from "../observability/mod.ts";

/** The KV router's metrics, with Dynamo's names (dynamo-facts §1.10). */
export class RouterMetrics {
  readonly blockHashingMs: Histogram<string>;
  readonly findMatchesMs: Histogram<string>;
  readonly schedulingMs: Histogram<string>;
  readonly totalMs: Histogram<string>;
  readonly kvHitRate: Histogram<string>;
  readonly eventsApplied: Counter<string>;
  readonly indexBlocks: Gauge<string>;
  readonly queuePending: Gauge<string>;
  readonly eventGaps: Counter<string>;
  readonly routerId: string;

  constructor(registry: Registry, routerId: string) {
    this.routerId = routerId;
    const registers = [registry];
    const overhead = (name: string, help: string) =>
      new Histogram({
        name: `dynamo_router_overhead_${name}`,
        help,
        labelNames: ["router_id"],
        buckets: exponentialBuckets(0.001, 100, 16),
        registers,
      });
    this.blockHashingMs = overhead("block_hashing_ms", "Time to hash a request's blocks");
    this.findMatchesMs = overhead(
      "indexer_find_matches_ms",
      "Time to find cached prefixes in the index",
    );
    this.schedulingMs = overhead("scheduling_ms", "Time to score candidates and pick a worker");
    this.totalMs = overhead("total_ms", "Total routing time for a request");
    this.kvHitRate = new Histogram({
      name: "dynamo_component_router_kv_hit_rate",
      help: "Fraction of the prompt cached on the chosen worker, as the router predicted it",
      labelNames: ["router_id"],
      buckets: [0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1],
      registers,
    });
    this.eventsApplied = new Counter({
      name: "dynamo_component_kv_cache_events_applied",
      help: "KV cache events applied to the router's index, by type and outcome",
      labelNames: ["event_type", "status"],
      registers,
    });
    this.indexBlocks = new Gauge({
      name: "dynamo_router_index_blocks",
      help: "Distinct KV blocks in the router's index",
      labelNames: ["router_id"],
      registers,
    });
    this.queuePending = new Gauge({
      name: "dynamo_frontend_router_queue_pending_requests",
      help: "Requests parked in the router's admission queue",
      labelNames: ["worker_type"],
      registers,
    });
    this.eventGaps = new Counter({
      name: "dynamo_router_kv_event_gaps_total",
      help: "Gaps in a worker's KV event ids, by how they were recovered",
      labelNames: ["recovery"],
      registers,
    });
  }
}
