/**
 * KV events between engines and workers: vLLM's ZMQ wire format (decoder and encoder), a
 * publisher in that format (the mocker uses it, so the mocker's events take the path a real
 * vLLM's do), the worker's subscriber for it (dedup and merging as Dynamo's publisher does),
 * and the worker's relay: per-worker event ids, a ring of recent events and a view of the
 * stored blocks, served on the `kv_events` and `kv_dump` request-plane endpoints for gap
 * recovery. Does not keep the router's index or decide when a router asks for recovery
 * (router/), nor carry events on the event plane (transport/).
 * @module
 */
export {
  DEFAULT_MAX_BATCH_BLOCKS,
  KvEventBatcher,
  type KvEventBatcherOptions,
  type KvEventUpdate,
} from "./kv_event_batcher.ts";
export {
  KV_DUMP_ENDPOINT,
  KV_EVENTS_ENDPOINT,
  kvDumpHandler,
  type KvDumpHeader,
  kvEventsHandler,
  type KvEventsRequest,
  registerKvEventEndpoints,
} from "./kv_event_endpoints.ts";
export { type KvEventDump, KvEventRelay, type KvEventRelayOptions } from "./kv_event_relay.ts";
export {
  type VllmConversionCounts,
  VllmEventConverter,
  type VllmEventConverterOptions,
  vllmEventFromInternal,
} from "./vllm_event_converter.ts";
export {
  offsetEndpointPort,
  VllmKvEventPublisher,
  type VllmKvEventPublisherOptions,
} from "./vllm_publisher.ts";
export {
  requestVllmReplay,
  type VllmReplayOptions,
  type VllmReplayResult,
} from "./vllm_replay_client.ts";
export {
  VllmKvEventSubscriber,
  type VllmKvEventSubscriberOptions,
  type VllmSubscriberStats,
} from "./vllm_subscriber.ts";
export {
  decodeSeq,
  decodeVllmBatch,
  decodeVllmMessage,
  encodeSeq,
  encodeVllmBatch,
  encodeVllmMessage,
  VLLM_REPLAY_END_SEQ,
  type VllmAllBlocksCleared,
  type VllmBlockRemoved,
  type VllmBlockStored,
  type VllmEncodeOptions,
  type VllmEvent,
  type VllmEventBatch,
  type VllmMessage,
} from "./vllm_wire.ts";
