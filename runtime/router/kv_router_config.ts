/** The KV router's knobs, with Dynamo's defaults (dynamo-facts §1.9). */
export interface KvRouterConfig {
  /** Weight of prefill cost against decode load; 0 = pure load balancing. */
  readonly overlapScoreWeight: number;
  /** 0 = pick the cheapest worker; > 0 = softmax sampling over normalised costs. */
  readonly temperature: number;
  /** Follow workers' KV events (true) or record routing decisions as a cache estimate. */
  readonly useKvEvents: boolean;
  /** Approximate mode: how long a routed block is assumed cached. */
  readonly ttlMs: number;
  /** Most distinct blocks the index holds. */
  readonly maxTreeSizeBlocks: number;
  /** Approximate mode: prune to this fraction of the maximum when over it. */
  readonly pruneTargetRatio: number;
  /**
   * Park a request when every worker has more than this many times its
   * max_num_batched_tokens of prefill booked; null = no queue.
   */
  readonly queueThreshold: number | null;
  /** Most requests parked in the queue; more are refused as overloaded. */
  readonly maxQueuedRequests: number;
  /** Busy when KV blocks used exceed this fraction of the worker's capacity. */
  readonly activeDecodeBlocksThreshold: number;
  /** Busy when booked prefill tokens exceed this absolute number. */
  readonly activePrefillTokensThreshold: number;
  /** Busy when booked prefill tokens exceed this multiple of max_num_batched_tokens. */
  readonly activePrefillTokensThresholdFrac: number;
  /** Count the request's own blocks in its worker's decode load. */
  readonly trackActiveBlocks: boolean;
  /** Assume requests sharing a prefix share KV blocks while both are active. */
  readonly assumeKvReuse: boolean;
  /** Count the request's uncached prompt tokens as prefill load. */
  readonly trackPrefillTokens: boolean;
  /** Seeds tie-breaking and sampling. */
  readonly seed: number;
}

export const DEFAULT_KV_ROUTER_CONFIG: KvRouterConfig = Object.freeze({
  overlapScoreWeight: 1,
  temperature: 0,
  useKvEvents: true,
  ttlMs: 120_000,
  maxTreeSizeBlocks: 1 << 20,
  pruneTargetRatio: 0.8,
  queueThreshold: 4,
  maxQueuedRequests: 4096,
  activeDecodeBlocksThreshold: 1,
  activePrefillTokensThreshold: 10_000_000,
  activePrefillTokensThresholdFrac: 10,
  trackActiveBlocks: true,
  assumeKvReuse: true,
  trackPrefillTokens: true,
  seed: 0,
});

/** Per-request overrides (`nvext.router_config_override`). */
export interface RouterOverrides {
  readonly overlapScoreWeight?: number;
  readonly temperature?: number;
}
