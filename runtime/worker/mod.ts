/**
 * Worker: one engine instance made reachable — request-plane endpoint, load and KV events on
 * the event plane, registration in discovery once ready, graceful drain on shutdown.
 * @module
 */
export {
  TOPICS,
  type WorkerConfig,
  type WorkerDeps,
  type WorkerKvEventSource,
  WorkerRoleHandle,
} from "./worker_role.ts";
