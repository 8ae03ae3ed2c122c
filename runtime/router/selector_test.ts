import assert from "node:assert/strict";
import type { ModelCard } from "../protocol/mod.ts";
import { SeededRng } from "../util/mod.ts";
import { createSelector } from "./create_selector.ts";
import type { RouteDecision, WorkerCandidate } from "./selector.ts";

const card = {} as ModelCard;
const workers: WorkerCandidate[] = [30, 10, 20].map((instanceId) => ({ instanceId, card }));
const req = { requestId: "r", tokenIds: [1, 2, 3] };

Deno.test("RoundRobinSelector.select() cycles through workers in id order", () => {
  const s = createSelector("round-robin", { rng: new SeededRng(1) });
  const picks = Array.from(
    { length: 6 },
    () => (s.select(req, workers) as RouteDecision).instanceId,
  );
  assert.deepEqual(picks, [10, 20, 30, 10, 20, 30]);
});

Deno.test("RandomSelector.select() is reproducible from its seed and reaches every worker", () => {
  const pick = (seed: number) => {
    const s = createSelector("random", { rng: new SeededRng(seed) });
    return Array.from({ length: 60 }, () => (s.select(req, workers) as RouteDecision).instanceId);
  };
  assert.deepEqual(pick(7), pick(7));
  assert.deepEqual(new Set(pick(7)), new Set([10, 20, 30]));
});
