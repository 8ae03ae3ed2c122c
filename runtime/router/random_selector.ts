import type { Rng } from "../util/mod.ts";
import type { RouteDecision, RouteRequest, WorkerCandidate, WorkerSelector } from "./selector.ts";

/** Picks a candidate uniformly at random from a seeded Rng. */
export class RandomSelector implements WorkerSelector {
  readonly mode = "random";
  readonly #rng: Rng;

  constructor(rng: Rng) {
    this.#rng = rng;
  }

  select(_request: RouteRequest, candidates: readonly WorkerCandidate[]): RouteDecision {
    const sorted = [...candidates].sort((a, b) => a.instanceId - b.instanceId);
    return { instanceId: sorted[this.#rng.nextInt(sorted.length)]!.instanceId };
  }
}
