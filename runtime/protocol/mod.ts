/**
 * Protocol: the types (and zod schemas for what crosses a boundary) shared by roles: model
 * cards, discovery records, engine requests and outputs, load reports, KV events. Codecs for
 * the wire live with their transports.
 * @module
 */
export {
  ENGINE_KINDS,
  type EngineKind,
  MODEL_TYPE,
  type ModelCard,
  ModelCardSchema,
  WORKER_ROLES,
  type WorkerRole,
} from "./model_card.ts";
export {
  type Bucket,
  BUCKETS,
  type DiscoveryInstance,
  DiscoveryInstanceSchema,
  discoveryKey,
  type EndpointInstance,
  EndpointInstanceSchema,
  type EventChannelInstance,
  EventChannelInstanceSchema,
  type ModelInstance,
  ModelInstanceSchema,
  parseTcpTransport,
} from "./discovery_instance.ts";
export {
  type CompletionUsage,
  type EngineOutput,
  type EngineRequest,
  EngineRequestSchema,
  FINISH_REASONS,
  type FinishReason,
  type WorkerLoad,
} from "./engine_io.ts";
export type { KvCacheEvent, KvCacheEventData, KvStoredBlock, RouterEvent } from "./kv_event.ts";
