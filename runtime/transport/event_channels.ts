import type { DiscoveryBackend } from "../discovery/mod.ts";
import { Logger } from "../observability/mod.ts";
import { BUCKETS, discoveryKey, type EventChannelInstance } from "../protocol/mod.ts";
import type { EventSubscriber } from "./event_subscriber.ts";

/** What identifies one event channel (a publisher's topic) in discovery. */
export interface EventChannelSpec {
  readonly namespace: string;
  readonly component: string;
  readonly topic: string;
  /** The publisher's discovery instance id (its publisher_id on the wire). */
  readonly instanceId: number;
  /** The publisher's `tcp://host:port`. */
  readonly endpoint: string;
}

/** A registered channel; `unregister` deletes its record. */
export interface EventChannelRegistration {
  readonly key: string;
  unregister(): Promise<void>;
}

/**
 * Advertises a ZMQ publisher in discovery as Dynamo does: bucket `v1/event_channels`, key
 * `{ns}/{component}/{topic}/{instance_id hex}`, an `EventChannel` record with transport
 * `{kind: "zmq", config: {endpoint}}`.
 */
export async function registerEventChannel(
  discovery: Pick<DiscoveryBackend, "put" | "delete">,
  spec: EventChannelSpec,
): Promise<EventChannelRegistration> {
  const key = discoveryKey(spec.namespace, spec.component, spec.topic, spec.instanceId);
  const record: EventChannelInstance = {
    type: "EventChannel",
    namespace: spec.namespace,
    component: spec.component,
    topic: spec.topic,
    instance_id: spec.instanceId,
    transport: { kind: "zmq", config: { endpoint: spec.endpoint } },
  };
  await discovery.put(BUCKETS.eventChannels, key, record);
  return { key, unregister: () => discovery.delete(BUCKETS.eventChannels, key) };
}

/** Which channels `followEventChannels` connects to. */
export interface FollowEventChannelsOptions {
  readonly namespace: string;
  /** Only channels of this topic; default every topic in the namespace. */
  readonly topic?: string;
  /** Only channels of this component; default every component. */
  readonly component?: string;
  /** Stops following; every endpoint connected by this call is then disconnected. */
  readonly signal: AbortSignal;
  /** Channels followed at once; more are ignored with a warning. Default 4096. */
  readonly maxChannels?: number;
  readonly logger?: Logger;
}

/**
 * Watches `v1/event_channels` and keeps `subscriber` connected to every matching publisher:
 * it connects when a channel record appears and disconnects when the last record naming that
 * endpoint goes away. Resolves when `signal` aborts (or the watch ends).
 */
export async function followEventChannels(
  discovery: Pick<DiscoveryBackend, "watch">,
  subscriber: EventSubscriber,
  options: FollowEventChannelsOptions,
): Promise<void> {
  const follower = new ChannelFollower(subscriber, options);
  try {
    for await (const event of discovery.watch(BUCKETS.eventChannels, options.signal)) {
      if (options.signal.aborted) break;
      if (event.kind === "removed") {
        follower.remove(event.key);
      } else if (event.value.type === "EventChannel" && follower.matches(event.value)) {
        follower.add(event.key, event.value);
      } else {
        follower.remove(event.key); // a changed record that no longer matches
      }
    }
  } finally {
    follower.removeAll();
  }
}

/** Channel key → endpoint, with endpoints reference-counted (one PUB serves many topics). */
class ChannelFollower {
  #subscriber: EventSubscriber;
  #options: FollowEventChannelsOptions;
  #logger: Logger;
  #maxChannels: number;
  #channels = new Map<string, { endpoint: string; instanceId: number }>();
  #refs = new Map<string, number>();

  constructor(subscriber: EventSubscriber, options: FollowEventChannelsOptions) {
    this.#subscriber = subscriber;
    this.#options = options;
    this.#logger = options.logger ?? new Logger("transport.event_plane");
    this.#maxChannels = options.maxChannels ?? 4096;
  }

  matches(record: EventChannelInstance): boolean {
    const { namespace, topic, component } = this.#options;
    return record.namespace === namespace && (topic === undefined || record.topic === topic) &&
      (component === undefined || record.component === component);
  }

  add(key: string, record: EventChannelInstance): void {
    const endpoint = record.transport.config.endpoint;
    const known = this.#channels.get(key);
    if (known?.endpoint === endpoint) return;
    if (known !== undefined) this.remove(key);
    if (this.#channels.size >= this.#maxChannels) {
      this.#logger.warn("Ignoring event channel: too many channels", {
        key,
        maxChannels: this.#maxChannels,
      });
      return;
    }
    const refs = this.#refs.get(endpoint) ?? 0;
    if (refs === 0) {
      try {
        this.#subscriber.connect(endpoint);
      } catch (err) {
        this.#logger.warn("Cannot follow event channel", { key, endpoint, err });
        return;
      }
      this.#logger.debug("Following event publisher", { key, endpoint });
    }
    this.#refs.set(endpoint, refs + 1);
    this.#channels.set(key, { endpoint, instanceId: record.instance_id });
  }

  remove(key: string): void {
    const channel = this.#channels.get(key);
    if (channel === undefined) return;
    this.#channels.delete(key);
    const refs = (this.#refs.get(channel.endpoint) ?? 1) - 1;
    if (refs > 0) {
      this.#refs.set(channel.endpoint, refs);
      return;
    }
    this.#refs.delete(channel.endpoint);
    this.#subscriber.disconnect(channel.endpoint);
    this.#subscriber.forgetPublisher(channel.instanceId);
    this.#logger.debug("Stopped following event publisher", { key, endpoint: channel.endpoint });
  }

  removeAll(): void {
    for (const key of [...this.#channels.keys()]) this.remove(key);
  }
}
