/**
 * Transport: the request plane (TCP, length-prefixed msgpack frames, many flow-controlled
 * and cancellable streams per connection) and the event plane (ZeroMQ PUB/SUB in Dynamo's
 * ZMQ wire format, with publishers advertised in discovery). Does not decide where requests
 * go (router/), what payloads mean (protocol/) or how discovery stores records (discovery/).
 * @module
 */
export {
  decodeMsgpack,
  DEFAULT_MAX_FRAME_BYTES,
  encodeFrame,
  encodeMsgpack,
  FRAME_HEADER_BYTES,
  FrameDecoder,
} from "./frame_codec.ts";
export {
  type CloseOptions,
  DEFAULT_PEER_SILENCE_TIMEOUT_MS,
  DEFAULT_SERVER_IDLE_TIMEOUT_MS,
  RequestPlaneServer,
  type RequestPlaneServerOptions,
  type StreamContext,
  type StreamHandler,
} from "./request_plane_server.ts";
export {
  type CallOptions,
  DEFAULT_CLIENT_IDLE_TIMEOUT_MS,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_HEARTBEAT_MS,
  DEFAULT_WINDOW_ITEMS,
  RequestPlaneClient,
  type RequestPlaneClientOptions,
  type RequestPlaneTarget,
} from "./request_plane_client.ts";
export {
  decodeEventMessage,
  encodeEventMessage,
  EVENT_FRAME_VERSION,
  type EventEnvelope,
} from "./event_envelope.ts";
export {
  componentSubject,
  componentSubjectPrefix,
  namespaceSubject,
  namespaceSubjectPrefix,
} from "./event_subject.ts";
export { EventPublisher, type EventPublisherOptions } from "./event_publisher.ts";
export { EventSubscriber, type EventSubscriberOptions } from "./event_subscriber.ts";
export {
  type EventChannelRegistration,
  type EventChannelSpec,
  followEventChannels,
  type FollowEventChannelsOptions,
  registerEventChannel,
} from "./event_channels.ts";
