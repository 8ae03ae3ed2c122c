import assert from "node:assert/strict";
import { SeededRng } from "../util/mod.ts";
import { type CandidateCost, candidateCost, pickWorker } from "./kv_cost.ts";

const params = {
  islTokens: 1000,
  queryBlocks: 15,
  blockSizeTokens: 64,
  overlapScoreWeight: 1,
  trackPrefillTokens: true,
};

Deno.test("candidateCost() follows Dynamo's formula", () => {
  const c = candidateCost({
    instanceId: 7,
    overlapBlocks: 10,
    treeSize: 3,
    activePrefillTokens: 128,
    activeBlocks: 20,
    activeDepth: 4,
  }, params);
  // prefill = 128 + (1000 − 10·64) = 488; decode = 20 + (15 − 4) = 31; logit = 488/64 + 31.
  assert.equal(c.prefill_tokens, 488);
  assert.equal(c.decode_blocks, 31);
  assert.equal(c.logit, 488 / 64 + 31);
  const w0 = candidateCost({
    instanceId: 7,
    overlapBlocks: 10,
    treeSize: 3,
    activePrefillTokens: 128,
    activeBlocks: 20,
    activeDepth: 4,
  }, { ...params, overlapScoreWeight: 0 });
  assert.equal(w0.logit, 31);
});

Deno.test("candidateCost() never counts a negative prefill when the overlap exceeds the prompt", () => {
  const c = candidateCost({
    instanceId: 1,
    overlapBlocks: 20,
    treeSize: 0,
    activePrefillTokens: 0,
    activeBlocks: 0,
    activeDepth: 0,
  }, params);
  assert.equal(c.prefill_tokens, 0);
});

function cost(id: number, logit: number, tree = 0): CandidateCost {
  return {
    worker_id: id,
    overlap_blocks: 0,
    prefill_tokens: 0,
    decode_blocks: 0,
    logit,
    tree_size: tree,
  };
}

Deno.test("pickWorker() at temperature 0 takes the lowest logit, then the smallest tree", () => {
  const rng = new SeededRng(1);
  assert.equal(pickWorker([cost(1, 5), cost(2, 3), cost(3, 4)], 0, rng), 2);
  assert.equal(pickWorker([cost(1, 3, 10), cost(2, 3, 2), cost(3, 3, 5)], 0, rng), 2);
  const picks = new Set(
    Array.from({ length: 50 }, () => pickWorker([cost(1, 3), cost(2, 3)], 0, rng)),
  );
  assert.deepEqual(picks, new Set([1, 2]), "full ties are broken at random");
});

Deno.test("pickWorker() with temperature samples cheaper workers more often", () => {
  const rng = new SeededRng(3);
  const counts = new Map<number, number>();
  for (let i = 0; i < 2000; i++) {
    const w = pickWorker([cost(1, 0), cost(2, 10)], 0.5, rng);
    counts.set(w, (counts.get(w) ?? 0) + 1);
  }
  // Weights exp(0) : exp(−1/0.5) = 1 : 0.135 → about 88% for worker 1.
  const share = counts.get(1)! / 2000;
  assert.ok(share > 0.84 && share < 0.92, `share ${share}`);
  const uniform = new Map<number, number>();
  for (let i = 0; i < 2000; i++) {
    const w = pickWorker([cost(1, 4), cost(2, 4)], 1, rng);
    uniform.set(w, (uniform.get(w) ?? 0) + 1);
  }
  assert.ok(Math.abs(uniform.get(1)! - 1000) < 120);
});
