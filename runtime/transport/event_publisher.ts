import * as zmq from "zeromq";
import { DynamoError } from "../errors/mod.ts";
import { Logger } from "../observability/mod.ts";
import { type Clock, type Deferred, deferred, systemClock } from "../util/mod.ts";
import { requirePositiveInt } from "./_options.ts";
import { encodeEventMessage } from "./event_envelope.ts";
import { DEFAULT_MAX_FRAME_BYTES, encodeMsgpack } from "./frame_codec.ts";

/** Options for `EventPublisher.bind`. */
export interface EventPublisherOptions {
  /** Address to bind the PUB socket on; the port is chosen by the OS. */
  readonly host: string;
  /** The host subscribers should connect to; required when `host` is a wildcard. Default `host`. */
  readonly advertiseHost?: string;
  /** Dynamo's publisher_id: the discovery instance id (a positive safe integer). */
  readonly publisherId: number;
  /** Messages waiting for the socket; when full the oldest is dropped. Default 4096. */
  readonly maxQueuedMessages?: number;
  /** ZMQ_SNDHWM: messages ZeroMQ queues per subscriber before dropping. Default 10000. */
  readonly sendHighWaterMarkMessages?: number;
  /** Largest encoded event accepted by `publish`. Default 32 MiB. */
  readonly maxEventBytes?: number;
  /** Distinct subjects (each with its own sequence). Default 1024. */
  readonly maxSubjects?: number;
  /** Source of `published_at`. Default the system clock. */
  readonly clock?: Clock;
  readonly logger?: Logger;
}

const WILDCARD_HOSTS = new Set(["*", "0.0.0.0", "::", "[::]"]);

/**
 * A ZeroMQ PUB socket that publishes events in Dynamo's ZMQ event-plane format. `publish`
 * never blocks: messages go through one bounded queue (zeromq.js refuses concurrent sends),
 * and when it is full the oldest unsent message is dropped; its sequence number stays
 * consumed, so subscribers see the loss as a gap.
 *
 * Sequences count per subject, from 0. Used as Dynamo uses it (one publisher per topic) that
 * is exactly Dynamo's per-publisher sequence; a publisher that interleaves several subjects
 * still lets a subscriber that takes only some of them detect loss exactly.
 */
export class EventPublisher {
  /** `tcp://{advertiseHost}:{port}`, for the EventChannel record. */
  readonly endpoint: string;
  readonly publisherId: number;
  #socket: zmq.Publisher;
  #clock: Clock;
  #logger: Logger;
  #maxQueuedMessages: number;
  #maxEventBytes: number;
  #maxSubjects: number;
  #sequences = new Map<string, number>();
  #queue: Uint8Array[][] = [];
  #sending = false;
  #flushWaiters: Deferred<void>[] = [];
  #dropped = 0;
  #sent = 0;
  #closed = false;

  private constructor(socket: zmq.Publisher, endpoint: string, options: EventPublisherOptions) {
    const what = "Cannot create event publisher";
    this.#socket = socket;
    this.endpoint = endpoint;
    this.publisherId = options.publisherId;
    this.#clock = options.clock ?? systemClock;
    this.#logger = options.logger ?? new Logger("transport.event_plane");
    this.#maxQueuedMessages = requirePositiveInt(
      what,
      "maxQueuedMessages",
      options.maxQueuedMessages ?? 4096,
    );
    this.#maxEventBytes = requirePositiveInt(
      what,
      "maxEventBytes",
      options.maxEventBytes ?? DEFAULT_MAX_FRAME_BYTES,
    );
    this.#maxSubjects = requirePositiveInt(what, "maxSubjects", options.maxSubjects ?? 1024);
  }

  /** Binds a PUB socket on `tcp://{host}:*`. */
  static async bind(options: EventPublisherOptions): Promise<EventPublisher> {
    const what = "Cannot bind event publisher";
    requirePositiveInt(what, "publisherId", options.publisherId);
    const advertiseHost = options.advertiseHost ?? options.host;
    if (WILDCARD_HOSTS.has(advertiseHost)) {
      throw new DynamoError(
        "invalid_request",
        "invalid_option",
        `${what}: host ${options.host} is a wildcard; set advertiseHost to an address subscribers can reach`,
        { param: "advertiseHost" },
      );
    }
    const socket = new zmq.Publisher({
      linger: 0,
      // PUB never blocks (past the high-water mark ZeroMQ drops), so a send can complete at
      // once and never waits on uv_poll (see EventSubscriber for why that matters in Deno).
      sendTimeout: 0,
      sendHighWaterMark: requirePositiveInt(
        what,
        "sendHighWaterMarkMessages",
        options.sendHighWaterMarkMessages ?? 10_000,
      ),
    });
    const host = options.host.includes(":") && !options.host.startsWith("[")
      ? `[${options.host}]`
      : options.host;
    try {
      await socket.bind(`tcp://${host}:*`);
      const port = /:(\d+)$/.exec(socket.lastEndpoint ?? "")?.[1];
      if (port === undefined) {
        throw new Error(`unexpected bound endpoint ${String(socket.lastEndpoint)}`);
      }
      const advertised = advertiseHost.includes(":") && !advertiseHost.startsWith("[")
        ? `[${advertiseHost}]`
        : advertiseHost;
      return new EventPublisher(socket, `tcp://${advertised}:${port}`, options);
    } catch (err) {
      socket.close();
      if (err instanceof DynamoError) throw err;
      throw new DynamoError(
        "unavailable",
        "listen_failed",
        `${what} on tcp://${host}:*: ${err instanceof Error ? err.message : String(err)}`,
        { cause: err },
      );
    }
  }

  /** Messages dropped because the queue was full. */
  get droppedMessages(): number {
    return this.#dropped;
  }

  /** Messages handed to ZeroMQ. */
  get sentMessages(): number {
    return this.#sent;
  }

  get queuedMessages(): number {
    return this.#queue.length;
  }

  /**
   * Publishes `event` (msgpack-encoded as the envelope's payload) on `subject`. Never waits.
   * Throws `invalid_request` for an event over maxEventBytes, a subject past maxSubjects, or
   * after `close`.
   */
  publish(subject: string, event: unknown): void {
    if (this.#closed) {
      throw new DynamoError(
        "unavailable",
        "publisher_closed",
        `Cannot publish on ${subject}: the publisher is closed`,
      );
    }
    const payload = encodeMsgpack(event);
    if (payload.length > this.#maxEventBytes) {
      throw new DynamoError(
        "invalid_request",
        "frame_too_large",
        `Cannot publish on ${subject}: event of ${payload.length} bytes exceeds the limit of ${this.#maxEventBytes} bytes`,
      );
    }
    const sequence = this.#nextSequence(subject);
    const message = encodeEventMessage({
      publisherId: this.publisherId,
      sequence,
      publishedAtMs: Math.floor(this.#clock.nowMs()),
      topic: subject,
      payload,
    });
    if (this.#queue.length >= this.#maxQueuedMessages) {
      this.#queue.shift();
      this.#dropped++;
      if (this.#dropped === 1 || this.#dropped % 1000 === 0) {
        this.#logger.warn("Dropping events: the send queue is full", {
          dropped: this.#dropped,
          maxQueuedMessages: this.#maxQueuedMessages,
        });
      }
    }
    this.#queue.push(message);
    if (!this.#sending) {
      this.#sending = true;
      void this.#sendQueued();
    }
  }

  /** Resolves once every queued message has been handed to ZeroMQ. */
  flush(): Promise<void> {
    if (!this.#sending) return Promise.resolve();
    const waiter = deferred<void>();
    this.#flushWaiters.push(waiter);
    return waiter.promise;
  }

  /** Sends what is queued, then closes the socket (ZeroMQ drops what subscribers have not read). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.flush();
    this.#socket.close();
  }

  #nextSequence(subject: string): number {
    const next = this.#sequences.get(subject);
    if (next === undefined && this.#sequences.size >= this.#maxSubjects) {
      throw new DynamoError(
        "invalid_request",
        "too_many_subjects",
        `Cannot publish on ${subject}: this publisher already uses ${this.#maxSubjects} subjects`,
      );
    }
    const sequence = next ?? 0;
    this.#sequences.set(subject, sequence + 1);
    return sequence;
  }

  async #sendQueued(): Promise<void> {
    for (;;) {
      const message = this.#queue.shift();
      if (message === undefined) break;
      try {
        await this.#socket.send(message);
        this.#sent++;
      } catch (err) {
        this.#logger.warn("Cannot send event", { endpoint: this.endpoint, err });
      }
    }
    this.#sending = false;
    for (const w of this.#flushWaiters.splice(0)) w.resolve();
  }
}
