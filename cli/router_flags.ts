import { DEFAULT_KV_ROUTER_CONFIG as D, type KvRouterConfig } from "../runtime/router/mod.ts";
import type { FlagSpec, ParsedArgs } from "./flags.ts";

/** The KV router's flags, named and defaulted as Dynamo's (dynamo-facts §1.9). */
export const KV_ROUTER_FLAGS: readonly FlagSpec[] = [
  {
    name: "router-kv-overlap-score-weight",
    type: "number",
    default: D.overlapScoreWeight,
    min: 0,
    help: "KV router: weight of prefill cost (cache misses) against decode load; 0 = load only",
  },
  {
    name: "router-temperature",
    type: "number",
    default: D.temperature,
    min: 0,
    help: "KV router: 0 picks the cheapest worker; > 0 samples by softmax over costs",
  },
  {
    name: "router-kv-events",
    type: "boolean",
    default: D.useKvEvents,
    help:
      "KV router: follow workers' KV events; --no-router-kv-events predicts caches from routing decisions",
  },
  {
    name: "router-ttl-secs",
    type: "number",
    default: D.ttlMs / 1000,
    min: 0,
    exclusiveMin: true,
    help: "KV router without events: how long a routed prefix is assumed cached",
  },
  {
    name: "router-max-tree-size",
    type: "int",
    default: D.maxTreeSizeBlocks,
    min: 1,
    help: "KV router: most blocks in the index",
  },
  {
    name: "router-prune-target-ratio",
    type: "number",
    default: D.pruneTargetRatio,
    min: 0,
    max: 1,
    help: "KV router without events: prune to this fraction of --router-max-tree-size",
  },
  {
    name: "router-queue-threshold",
    type: "number",
    default: D.queueThreshold ?? 0,
    min: 0,
    help:
      "KV router: park requests while every worker has more than this many batches of prefill queued (0 = no queue)",
  },
  {
    name: "active-decode-blocks-threshold",
    type: "number",
    default: D.activeDecodeBlocksThreshold,
    min: 0,
    help: "KV router: a worker is busy above this fraction of its KV blocks in use",
  },
  {
    name: "active-prefill-tokens-threshold",
    type: "int",
    default: D.activePrefillTokensThreshold,
    min: 0,
    help: "KV router: a worker is busy above this many queued prefill tokens",
  },
  {
    name: "active-prefill-tokens-threshold-frac",
    type: "number",
    default: D.activePrefillTokensThresholdFrac,
    min: 0,
    help:
      "KV router: a worker is busy above this many batches (max_num_batched_tokens) of queued prefill",
  },
  {
    name: "router-track-active-blocks",
    type: "boolean",
    default: D.trackActiveBlocks,
    help: "KV router: count requests' KV blocks in decode load",
  },
  {
    name: "router-assume-kv-reuse",
    type: "boolean",
    default: D.assumeKvReuse,
    help: "KV router: assume active requests sharing a prefix share its blocks",
  },
  {
    name: "router-track-prefill-tokens",
    type: "boolean",
    default: D.trackPrefillTokens,
    help: "KV router: count uncached prompt tokens as prefill load",
  },
];

/** Resolves the KV router flags into a frozen config. */
export function kvRouterConfig(args: ParsedArgs, seed: number): KvRouterConfig {
  const v = args.values;
  const queue = v["router-queue-threshold"] as number;
  return Object.freeze({
    ...D,
    overlapScoreWeight: v["router-kv-overlap-score-weight"] as number,
    temperature: v["router-temperature"] as number,
    useKvEvents: v["router-kv-events"] as boolean,
    ttlMs: (v["router-ttl-secs"] as number) * 1000,
    maxTreeSizeBlocks: v["router-max-tree-size"] as number,
    pruneTargetRatio: v["router-prune-target-ratio"] as number,
    queueThreshold: queue === 0 ? null : queue,
    activeDecodeBlocksThreshold: v["active-decode-blocks-threshold"] as number,
    activePrefillTokensThreshold: v["active-prefill-tokens-threshold"] as number,
    activePrefillTokensThresholdFrac: v["active-prefill-tokens-threshold-frac"] as number,
    trackActiveBlocks: v["router-track-active-blocks"] as boolean,
    assumeKvReuse: v["router-assume-kv-reuse"] as boolean,
    trackPrefillTokens: v["router-track-prefill-tokens"] as boolean,
    seed,
  });
}
