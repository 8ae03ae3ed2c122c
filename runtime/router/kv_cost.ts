import type { Rng } from "../util/mod.ts";

/** What the cost function knows about one candidate worker. */
export interface CandidateInput {
  readonly instanceId: number;
  /** Blocks of the request's prefix the worker already has cached (from the index). */
  readonly overlapBlocks: number;
  /** The worker's block count in the index; the first tie-breaker. */
  readonly treeSize: number;
  /** Prompt tokens already booked on the worker and not yet prefilled. */
  readonly activePrefillTokens: number;
  /** KV blocks already in use by the worker's active requests. */
  readonly activeBlocks: number;
  /** How many of the request's blocks the worker's active requests already hold. */
  readonly activeDepth: number;
}

/** One candidate's cost, as `POST /v1/route` reports it. */
export interface CandidateCost {
  readonly worker_id: number;
  readonly overlap_blocks: number;
  readonly prefill_tokens: number;
  readonly decode_blocks: number;
  readonly logit: number;
  readonly tree_size: number;
}

export interface CostParams {
  readonly islTokens: number;
  /** The request's full blocks. */
  readonly queryBlocks: number;
  readonly blockSizeTokens: number;
  readonly overlapScoreWeight: number;
  readonly trackPrefillTokens: boolean;
}

/**
 * Dynamo's cost (dynamo-facts §1.5): a worker's prefill work in blocks, weighted, plus its
 * decode load in blocks once this request joins it.
 *   prefill_tokens = active_prefill + max(0, isl − overlap·bs)
 *   decode_blocks  = active_blocks + (query_blocks − active_depth)
 *   logit          = w · prefill_tokens / bs + decode_blocks
 */
export function candidateCost(c: CandidateInput, p: CostParams): CandidateCost {
  const newPrefill = p.trackPrefillTokens
    ? Math.max(0, p.islTokens - c.overlapBlocks * p.blockSizeTokens)
    : 0;
  const prefillTokens = c.activePrefillTokens + newPrefill;
  const decodeBlocks = c.activeBlocks + (p.queryBlocks - c.activeDepth);
  return {
    worker_id: c.instanceId,
    overlap_blocks: c.overlapBlocks,
    prefill_tokens: prefillTokens,
    decode_blocks: decodeBlocks,
    logit: p.overlapScoreWeight * prefillTokens / p.blockSizeTokens + decodeBlocks,
    tree_size: c.treeSize,
  };
}

/**
 * Picks a worker. Temperature 0: the lowest logit; ties go to the smallest tree, then to a
 * draw from `rng`. Temperature > 0: softmax over −logit / (max − min) / T (uniform when all
 * logits are equal), sampled with one draw from `rng`.
 */
export function pickWorker(costs: readonly CandidateCost[], temperature: number, rng: Rng): number {
  if (costs.length === 1) return costs[0]!.worker_id;
  if (temperature <= 0) {
    let best: CandidateCost[] = [];
    for (const c of costs) {
      const b = best[0];
      if (
        b === undefined || c.logit < b.logit || (c.logit === b.logit && c.tree_size < b.tree_size)
      ) {
        best = [c];
      } else if (c.logit === b.logit && c.tree_size === b.tree_size) {
        best.push(c);
      }
    }
    return best[best.length === 1 ? 0 : rng.nextInt(best.length)]!.worker_id;
  }
  const logits = costs.map((c) => c.logit);
  const max = Math.max(...logits);
  const min = Math.min(...logits);
  const range = max - min;
  const weights = logits.map((v) => range === 0 ? 1 : Math.exp(-(v - min) / range / temperature));
  const total = weights.reduce((a, b) => a + b, 0);
  let u = rng.nextFloat() * total;
  for (let i = 0; i < costs.length; i++) {
    u -= weights[i]!;
    if (u < 0) return costs[i]!.worker_id;
  }
  return costs[costs.length - 1]!.worker_id;
}
