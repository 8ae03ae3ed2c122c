/**
 * Router: worker selection policies behind one interface (`WorkerSelector`): round-robin,
 * random, and the KV-aware policy (cached-prefix overlap plus load, dynamo-facts §1.4–1.7)
 * with its shared state (index, booked load, event bookkeeping). Selection only: sending
 * the request is the frontend pipeline's job.
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
export { createSelector, type KvSelectorDeps } from "./create_selector.ts";
export {
  DEFAULT_KV_ROUTER_CONFIG,
  type KvRouterConfig,
  type RouterOverrides,
} from "./kv_router_config.ts";
export { type CandidateCost, candidateCost, pickWorker } from "./kv_cost.ts";
export { ActiveSequences } from "./active_sequences.ts";
export { KvRoutingState } from "./kv_routing_state.ts";
export { type KvExplanation, KvSelector } from "./kv_selector.ts";
export { RouterMetrics } from "./router_metrics.ts";
export { RemoteSelector } from "./remote_selector.ts";
export {
  type EventQueryCaller,
  KV_EVENTS_TOPIC,
  KvEventConsumer,
  type KvEventConsumerOptions,
} from "./kv_event_consumer.ts";
