import * as zmq from "zeromq";
import { DynamoError } from "../errors/mod.ts";
import { Logger } from "../observability/mod.ts";
import { requirePositiveInt } from "./_options.ts";
import { decodeEventMessage, type EventEnvelope } from "./event_envelope.ts";
import { decodeMsgpack, DEFAULT_MAX_FRAME_BYTES } from "./frame_codec.ts";

/** Messages handled before the receive loop lets the event loop run. */
const MESSAGES_PER_TURN = 256;

/** Options for `EventSubscriber`. */
export interface EventSubscriberOptions {
  /** Subject prefixes to receive (ZeroMQ filters on the topic frame); `[""]` takes everything. */
  readonly subjectPrefixes: readonly string[];
  /** Called for every valid event, in order per publisher. Exceptions are logged. */
  readonly onEvent: (envelope: EventEnvelope, event: unknown) => void;
  /** Called when a publisher's sequence on a subject skips: events were lost. */
  readonly onGap?: (
    publisherId: number,
    expectedSequence: number,
    receivedSequence: number,
    topic: string,
  ) => void;
  /** Publishers connected at once. Default 1024. */
  readonly maxEndpoints?: number;
  /** (publisher, subject) sequences remembered; the oldest is forgotten past this. Default 4096. */
  readonly maxTrackedStreams?: number;
  /** ZMQ_MAXMSGSIZE: larger messages close the offending connection. Default 32 MiB + 1 KiB. */
  readonly maxMessageBytes?: number;
  /** ZMQ_RCVHWM: messages ZeroMQ queues before dropping. Default 10000. */
  readonly receiveHighWaterMarkMessages?: number;
  /**
   * Longest pause between checks of an idle subscriber (see `EventSubscriber`): checks start
   * 1 ms apart after a message and back off, doubling, up to this. Default 50 ms: every
   * wakeup of an idle Deno event loop costs CPU (about 1% of a core at 40 per second here).
   */
  readonly idlePollMs?: number;
  readonly logger?: Logger;
}

/**
 * A ZeroMQ SUB socket that receives Dynamo ZMQ event-plane messages from any number of
 * publishers. Bad messages are dropped with a warning; sequence gaps are reported per
 * publisher and subject. A publisher whose sequence goes back (a restart reusing its id)
 * starts a new stream; a restart with a new id is a new publisher. Neither is a gap.
 *
 * Receiving polls: non-blocking reads (ZMQ_RCVTIMEO 0) drain what is queued, and when
 * nothing is, the next check comes 1 ms later, backing off (doubling) to idlePollMs while
 * nothing arrives, so a busy subscriber sees events within a millisecond or two and an idle
 * one costs almost no CPU. A pending zeromq.js `receive()` waits
 * on `uv_poll`, and Deno's compatibility `uv_poll_start` stops watching after its first
 * callback (denoland/deno#36317): after a connect or disconnect such a receive never wakes.
 */
export class EventSubscriber {
  #socket: zmq.Subscriber;
  #options: EventSubscriberOptions;
  #logger: Logger;
  #maxEndpoints: number;
  #maxTrackedStreams: number;
  #endpoints = new Set<string>();
  /** `${publisherId}/${topic}` → last sequence seen; insertion order is age. */
  #lastSequence = new Map<string, number>();
  #received = 0;
  #dropped = 0;
  #gaps = 0;
  #idlePollMs: number;
  #idleTimer: ReturnType<typeof setTimeout> | undefined;
  /** The next idle pause: 1 ms after a message, doubling up to #idlePollMs. */
  #idleBackoffMs = 1;
  #wakeIdle: (() => void) | undefined;
  #loop: Promise<void>;

  constructor(options: EventSubscriberOptions) {
    const what = "Cannot create event subscriber";
    this.#options = options;
    this.#logger = options.logger ?? new Logger("transport.event_plane");
    this.#maxEndpoints = requirePositiveInt(what, "maxEndpoints", options.maxEndpoints ?? 1024);
    this.#maxTrackedStreams = requirePositiveInt(
      what,
      "maxTrackedStreams",
      options.maxTrackedStreams ?? 4096,
    );
    if (options.subjectPrefixes.length === 0) {
      throw new DynamoError(
        "invalid_request",
        "invalid_option",
        `${what}: subjectPrefixes is empty; use [""] for every subject`,
      );
    }
    this.#idlePollMs = requirePositiveInt(what, "idlePollMs", options.idlePollMs ?? 50);
    this.#socket = new zmq.Subscriber({
      linger: 0,
      receiveTimeout: 0,
      maxMessageSize: requirePositiveInt(
        what,
        "maxMessageBytes",
        options.maxMessageBytes ?? DEFAULT_MAX_FRAME_BYTES + 1024,
      ),
      receiveHighWaterMark: requirePositiveInt(
        what,
        "receiveHighWaterMarkMessages",
        options.receiveHighWaterMarkMessages ?? 10_000,
      ),
    });
    this.#socket.subscribe(...options.subjectPrefixes);
    this.#loop = this.#receive();
  }

  /** Publisher endpoints currently connected. */
  get endpoints(): ReadonlySet<string> {
    return this.#endpoints;
  }

  /** Valid events delivered. */
  get receivedMessages(): number {
    return this.#received;
  }

  /** Messages dropped as malformed. */
  get droppedMessages(): number {
    return this.#dropped;
  }

  /** Sequence gaps seen. */
  get gapCount(): number {
    return this.#gaps;
  }

  /** Connects to a publisher (`tcp://host:port`); ZeroMQ reconnects by itself if it drops. */
  connect(endpoint: string): void {
    if (this.#endpoints.has(endpoint)) return;
    if (!/^tcp:\/\/.+:\d+$/.test(endpoint)) {
      throw new DynamoError(
        "invalid_request",
        "invalid_endpoint",
        `Cannot connect to ${JSON.stringify(endpoint)}: not a tcp://host:port endpoint`,
      );
    }
    if (this.#endpoints.size >= this.#maxEndpoints) {
      throw new DynamoError(
        "overloaded",
        "too_many_publishers",
        `Cannot connect to ${endpoint}: already connected to ${this.#maxEndpoints} publishers`,
      );
    }
    this.#socket.connect(endpoint);
    this.#endpoints.add(endpoint);
  }

  /** Disconnects from a publisher; a no-op for one not connected. */
  disconnect(endpoint: string): void {
    if (!this.#endpoints.delete(endpoint)) return;
    try {
      this.#socket.disconnect(endpoint);
    } catch (err) {
      this.#logger.debug("Cannot disconnect from publisher", { endpoint, err });
    }
  }

  /** Forgets a publisher's sequences (it went away; if it comes back, it starts afresh). */
  forgetPublisher(publisherId: number): void {
    const prefix = `${publisherId}/`;
    for (const key of [...this.#lastSequence.keys()]) {
      if (key.startsWith(prefix)) this.#lastSequence.delete(key);
    }
  }

  /** Closes the socket and waits for the receive loop to end. */
  async close(): Promise<void> {
    if (!this.#socket.closed) this.#socket.close();
    clearTimeout(this.#idleTimer);
    this.#wakeIdle?.();
    await this.#loop;
  }

  async #receive(): Promise<void> {
    let sinceYield = 0;
    while (!this.#socket.closed) {
      // Checking ZMQ_EVENTS is far cheaper than a receive that fails with EAGAIN.
      if (!this.#socket.readable) {
        sinceYield = 0;
        await this.#idle();
        continue;
      }
      let frames: Uint8Array[];
      try {
        frames = await this.#socket.receive();
      } catch (err) {
        if (this.#socket.closed) return;
        if ((err as { code?: string }).code !== "EAGAIN") {
          this.#logger.error("Cannot receive event", { err });
        }
        sinceYield = 0;
        await this.#idle();
        continue;
      }
      this.#idleBackoffMs = 1;
      this.#handle(frames);
      // Reads resolve at once; let timers and I/O run during a long burst.
      if (++sinceYield >= MESSAGES_PER_TURN) {
        sinceYield = 0;
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
    }
  }

  #idle(): Promise<void> {
    return new Promise((resolve) => {
      this.#wakeIdle = resolve;
      this.#idleTimer = setTimeout(resolve, this.#idleBackoffMs);
      this.#idleBackoffMs = Math.min(this.#idleBackoffMs * 2, this.#idlePollMs);
      Deno.unrefTimer(this.#idleTimer);
    });
  }

  #handle(frames: Uint8Array[]): void {
    let envelope: EventEnvelope;
    let event: unknown;
    try {
      envelope = decodeEventMessage(frames);
      event = decodeMsgpack(envelope.payload);
    } catch (err) {
      this.#dropped++;
      this.#logger.warn("Dropping malformed event", { err, frames: frames.length });
      return;
    }
    this.#track(envelope);
    this.#received++;
    try {
      this.#options.onEvent(envelope, event);
    } catch (err) {
      this.#logger.error("Event handler failed", { topic: envelope.topic, err });
    }
  }

  #track(envelope: EventEnvelope): void {
    const key = `${envelope.publisherId}/${envelope.topic}`;
    const last = this.#lastSequence.get(key);
    this.#lastSequence.delete(key); // re-inserted below as the newest
    if (last !== undefined && envelope.sequence > last + 1) {
      this.#gaps++;
      this.#logger.debug("Sequence gap", {
        publisherId: envelope.publisherId,
        topic: envelope.topic,
        expected: last + 1,
        received: envelope.sequence,
      });
      try {
        this.#options.onGap?.(envelope.publisherId, last + 1, envelope.sequence, envelope.topic);
      } catch (err) {
        this.#logger.error("Gap handler failed", { topic: envelope.topic, err });
      }
    }
    this.#lastSequence.set(key, envelope.sequence);
    if (this.#lastSequence.size > this.#maxTrackedStreams) {
      this.#lastSequence.delete(this.#lastSequence.keys().next().value!);
    }
  }
}
