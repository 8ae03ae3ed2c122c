import type { RouteDecision, RouteRequest, WorkerCandidate, WorkerSelector } from "./selector.ts";

/** Cycles through the candidates in instance-id order. */
export class RoundRobinSelector implements WorkerSelector {
  readonly mode = "round-robin";
  #next = 0;

  select(_request: RouteRequest, candidates: readonly WorkerCandidate[]): RouteDecision {
    const sorted = [...candidates].sort((a, b) => a.instanceId - b.instanceId);
    const chosen = sorted[this.#next % sorted.length]!;
    this.#next = (this.#next + 1) % Number.MAX_SAFE_INTEGER;
    return { instanceId: chosen.instanceId };
  }
}
