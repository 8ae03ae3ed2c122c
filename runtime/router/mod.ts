/**
 * Router: worker selection policies behind one interface (`WorkerSelector`). Today
 * round-robin and random; the KV-aware policy implements the same interface. Selection only:
 * sending the request is the frontend pipeline's job.
 * @module
 */
export {
  type RouteDecision,
  ROUTER_MODES,
  type RouteRequest,
  type RouterMode,
  type WorkerCandidate,
  type WorkerSelector,
} from "./selector.ts";
export { RoundRobinSelector } from "./round_robin_selector.ts";
export { RandomSelector } from "./random_selector.ts";
export { createSelector } from "./create_selector.ts";
