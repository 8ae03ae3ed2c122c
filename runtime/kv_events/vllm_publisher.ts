import * as zmq from "zeromq";
import { DynamoError } from "../errors/mod.ts";
import { Logger } from "../observability/mod.ts";
import { type Clock, type Deferred, deferred, systemClock } from "../util/mod.ts";
import { Ring } from "./_ring.ts";
import { pauseAfterError, PollingReader } from "./_zmq_poll.ts";
import { encodeSeq, encodeVllmBatch, VLLM_REPLAY_END_SEQ, type VllmEvent } from "./vllm_wire.ts";

/** Options for `VllmKvEventPublisher.bind`. */
export interface VllmKvEventPublisherOptions {
  /**
   * Where the PUB socket binds: `tcp://HOST:PORT` (PORT `0` or `*` = any free port; HOST `*`
   * = every interface), `ipc://…` or `inproc://…`. Offset by `dpRank` as vLLM does.
   */
  readonly endpoint: string;
  /** The topic frame of every message. Default "" (vLLM's default). */
  readonly topic?: string;
  /** This engine's data-parallel rank: written into every batch and added to the ports. Default 0. */
  readonly dpRank?: number;
  /** Where the ROUTER socket serving replays binds (same forms as `endpoint`). Default none. */
  readonly replayEndpoint?: string;
  /** Batches kept for replay (vLLM's `buffer_steps`). Default 10,000. */
  readonly bufferSteps?: number;
  /** Batches waiting for the PUB socket; past it the oldest is dropped. Default 10,000. */
  readonly maxQueuedBatches?: number;
  /** ZMQ_SNDHWM of the PUB socket (vLLM's `hwm`). Default 100,000. */
  readonly sendHighWaterMarkMessages?: number;
  /** Send hashes >= 2^63 as negative i64 (see `VllmEncodeOptions`). Default false. */
  readonly signedHashes?: boolean;
  /** Source of each batch's `ts`. Default the system clock. */
  readonly clock?: Clock;
  /** Longest pause between checks of an idle replay socket. Default 50 ms. */
  readonly idlePollMs?: number;
  readonly logger?: Logger;
}

/**
 * A KV-event publisher that speaks vLLM's ZMQ wire format (`ZmqEventPublisher`): a PUB
 * socket sending `[topic, seq, msgpack batch]` with seq counting batches from 0, and
 * optionally vLLM's replay service, a ROUTER socket that answers `[…, "", start_seq u64 BE]`
 * with every buffered batch whose seq is >= start_seq, each as `[…, "", seq, payload]`,
 * then `[…, "", (-1) as i64 BE, ""]`.
 *
 * `publish` never waits. A batch gets its seq and enters the replay buffer when published;
 * if the send queue is full, the oldest unsent batch is dropped, so subscribers see a gap
 * they can fill from the replay buffer. Unlike vLLM, which blocks the engine when its queue
 * is full, this publisher never slows its engine down.
 */
export class VllmKvEventPublisher {
  /** The bound endpoint, with a wildcard host replaced by loopback: what a local SUB connects to. */
  readonly endpoint: string;
  /** The bound replay endpoint (loopback for a wildcard host), if replay is on. */
  readonly replayEndpoint: string | undefined;
  readonly topic: string;
  readonly dpRank: number;
  readonly #pub: zmq.Publisher;
  readonly #router: zmq.Router | undefined;
  readonly #topicBytes: Uint8Array;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #signedHashes: boolean;
  readonly #maxQueued: number;
  readonly #buffer: Ring<{ seq: bigint; payload: Uint8Array }>;
  readonly #queue: Uint8Array[][] = [];
  readonly #reader: PollingReader | undefined;
  readonly #replayLoop: Promise<void>;
  #nextSeq = 0n;
  #sending = false;
  #flushWaiters: Deferred<void>[] = [];
  #sent = 0;
  #dropped = 0;
  #replays = 0;
  #closed = false;

  private constructor(
    sockets: { pub: zmq.Publisher; router: zmq.Router | undefined },
    endpoints: { pub: string; replay: string | undefined },
    options: VllmKvEventPublisherOptions,
  ) {
    this.#pub = sockets.pub;
    this.#router = sockets.router;
    this.endpoint = endpoints.pub;
    this.replayEndpoint = endpoints.replay;
    this.topic = options.topic ?? "";
    this.dpRank = options.dpRank ?? 0;
    this.#topicBytes = new TextEncoder().encode(this.topic);
    this.#clock = options.clock ?? systemClock;
    this.#logger = options.logger ?? new Logger("kv_events");
    this.#signedHashes = options.signedHashes ?? false;
    this.#maxQueued = positive("maxQueuedBatches", options.maxQueuedBatches ?? 10_000);
    this.#buffer = new Ring(positive("bufferSteps", options.bufferSteps ?? 10_000));
    if (this.#router !== undefined) {
      this.#reader = new PollingReader(
        this.#router,
        positive("idlePollMs", options.idlePollMs ?? 50),
      );
    }
    this.#replayLoop = this.#serveReplays();
  }

  /** Binds the PUB socket (and the replay ROUTER socket, if asked for). */
  static async bind(options: VllmKvEventPublisherOptions): Promise<VllmKvEventPublisher> {
    const dpRank = options.dpRank ?? 0;
    if (!Number.isInteger(dpRank) || dpRank < 0) {
      throw new DynamoError(
        "invalid_request",
        "invalid_option",
        `Cannot bind vLLM KV event publisher: dpRank must be a non-negative integer, got ${dpRank}`,
        { param: "dpRank" },
      );
    }
    const pub = new zmq.Publisher({
      linger: 0,
      // PUB never blocks (past the high-water mark ZeroMQ drops), so sends complete at once.
      sendTimeout: 0,
      sendHighWaterMark: positive(
        "sendHighWaterMarkMessages",
        options.sendHighWaterMarkMessages ?? 100_000,
      ),
    });
    let router: zmq.Router | undefined;
    try {
      const pubEndpoint = await bindSocket(pub, offsetEndpointPort(options.endpoint, dpRank));
      let replayEndpoint: string | undefined;
      if (options.replayEndpoint !== undefined) {
        // Room for a whole replay per client: a ROUTER drops what passes its high-water mark.
        const hwm = positive("bufferSteps", options.bufferSteps ?? 10_000) + 1;
        router = new zmq.Router({
          linger: 0,
          sendTimeout: 0,
          receiveTimeout: 0,
          sendHighWaterMark: hwm,
        });
        replayEndpoint = await bindSocket(
          router,
          offsetEndpointPort(options.replayEndpoint, dpRank),
        );
      }
      return new VllmKvEventPublisher({ pub, router }, {
        pub: pubEndpoint,
        replay: replayEndpoint,
      }, options);
    } catch (err) {
      pub.close();
      router?.close();
      throw err;
    }
  }

  /** The seq the next batch will get. */
  get nextSeq(): bigint {
    return this.#nextSeq;
  }

  /** Batches handed to ZeroMQ. */
  get sentBatches(): number {
    return this.#sent;
  }

  /** Batches dropped from a full send queue (still in the replay buffer). */
  get droppedBatches(): number {
    return this.#dropped;
  }

  /** Replay requests answered. */
  get replaysServed(): number {
    return this.#replays;
  }

  /**
   * Publishes `events` as one batch and returns its seq. Never waits. Throws `unavailable`
   * after `close()`.
   */
  publish(events: readonly VllmEvent[]): bigint {
    if (this.#closed) {
      throw new DynamoError(
        "unavailable",
        "publisher_closed",
        `Cannot publish vLLM KV events on ${this.endpoint}: the publisher is closed`,
      );
    }
    const seq = this.#nextSeq++;
    const payload = encodeVllmBatch(
      { ts: this.#clock.nowMs() / 1000, events, dpRank: this.dpRank },
      { signedHashes: this.#signedHashes },
    );
    this.#buffer.push({ seq, payload });
    if (this.#queue.length >= this.#maxQueued) {
      this.#queue.shift();
      if (this.#dropped++ % 1000 === 0) {
        this.#logger.warn("Dropping vLLM KV event batches: the send queue is full", {
          dropped: this.#dropped,
          max_queued_batches: this.#maxQueued,
        });
      }
    }
    this.#queue.push([this.#topicBytes, encodeSeq(seq), payload]);
    if (!this.#sending) {
      this.#sending = true;
      void this.#sendQueued();
    }
    return seq;
  }

  /** Resolves once every queued batch has been handed to ZeroMQ. */
  flush(): Promise<void> {
    if (!this.#sending) return Promise.resolve();
    const waiter = deferred<void>();
    this.#flushWaiters.push(waiter);
    return waiter.promise;
  }

  /**
   * Sends what is queued, then closes both sockets (linger 0: what subscribers have not
   * read yet is dropped, as when vLLM shuts its publisher down). Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return this.#replayLoop;
    this.#closed = true;
    await this.flush();
    this.#pub.close();
    this.#router?.close();
    this.#reader?.wake();
    await this.#replayLoop;
  }

  async #sendQueued(): Promise<void> {
    for (;;) {
      const message = this.#queue.shift();
      if (message === undefined) break;
      try {
        await this.#pub.send(message);
        this.#sent++;
      } catch (err) {
        this.#logger.warn("Cannot send vLLM KV event batch", { endpoint: this.endpoint, err });
      }
    }
    this.#sending = false;
    for (const w of this.#flushWaiters.splice(0)) w.resolve();
  }

  async #serveReplays(): Promise<void> {
    const router = this.#router;
    const reader = this.#reader;
    if (router === undefined || reader === undefined) return;
    for (;;) {
      let frames: Uint8Array[] | undefined;
      try {
        frames = await reader.next();
      } catch (err) {
        this.#logger.error("Cannot receive a replay request", { err });
        await pauseAfterError();
        continue;
      }
      if (frames === undefined) return;
      try {
        await this.#replay(router, frames);
      } catch (err) {
        if (router.closed) return;
        this.#logger.warn("Cannot answer a replay request", { err });
      }
    }
  }

  /** Answers `[identity, "", start_seq]` as vLLM's `_service_replay` does. */
  async #replay(router: zmq.Router, frames: Uint8Array[]): Promise<void> {
    if (frames.length !== 3) {
      this.#logger.warn("Ignoring an invalid replay request", { frames: frames.length });
      return;
    }
    const [identity, , startBytes] = frames as [Uint8Array, Uint8Array, Uint8Array];
    // vLLM reads the start as an unsigned big-endian integer of any length.
    let start = 0n;
    for (const byte of startBytes) start = (start << 8n) | BigInt(byte);
    const empty = new Uint8Array(0);
    // Copied first: publish() may push into the ring while the sends below wait.
    for (const { seq, payload } of [...this.#buffer]) {
      if (seq >= start) await router.send([identity, empty, encodeSeq(seq), payload]);
    }
    await router.send([identity, empty, encodeSeq(VLLM_REPLAY_END_SEQ), empty]);
    this.#replays++;
  }
}

/**
 * vLLM's `offset_endpoint_port`: rank 0 keeps the endpoint; otherwise a tcp port gets the
 * rank added (an "any port" `0`/`*` stays any) and an inproc name gets `_dp{rank}`.
 */
export function offsetEndpointPort(endpoint: string, dpRank: number): string {
  if (dpRank === 0) return endpoint;
  if (endpoint.startsWith("inproc://")) return `${endpoint}_dp${dpRank}`;
  const m = /^(tcp:\/\/.+):(\d+|\*)$/.exec(endpoint);
  if (m === null) {
    throw new DynamoError(
      "invalid_request",
      "invalid_endpoint",
      `Cannot offset ${
        JSON.stringify(endpoint)
      } by dp rank ${dpRank}: not a tcp://host:port or inproc:// endpoint`,
    );
  }
  if (m[2] === "*" || m[2] === "0") return endpoint;
  return `${m[1]}:${Number(m[2]) + dpRank}`;
}

/** Binds `socket`; returns its endpoint as a local peer would connect to it. */
async function bindSocket(socket: zmq.Socket, endpoint: string): Promise<string> {
  const m = /^tcp:\/\/(.+):(\d+|\*)$/.exec(endpoint);
  const bindTo = m !== null && m[2] === "0" ? `tcp://${m[1]}:*` : endpoint;
  if (m === null && !/^(ipc|inproc):\/\/./.test(endpoint)) {
    throw new DynamoError(
      "invalid_request",
      "invalid_endpoint",
      `Cannot bind ${
        JSON.stringify(endpoint)
      }: not a tcp://host:port, ipc:// or inproc:// endpoint`,
    );
  }
  try {
    await socket.bind(bindTo);
  } catch (err) {
    throw new DynamoError(
      "unavailable",
      "listen_failed",
      `Cannot bind vLLM KV event socket on ${bindTo}: ${
        err instanceof Error ? err.message : String(err)
      }`,
      { cause: err },
    );
  }
  const bound = socket.lastEndpoint ?? bindTo;
  // A subscriber on this host reaches a wildcard bind through loopback (Dynamo replaces "*"
  // with 127.0.0.1 the same way when it attaches to vLLM).
  return bound.replace(/^tcp:\/\/(0\.0\.0\.0|\*):/, "tcp://127.0.0.1:")
    .replace(/^tcp:\/\/(\[::\]|::):/, "tcp://[::1]:");
}

function positive(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new DynamoError(
      "invalid_request",
      "invalid_option",
      `Cannot create vLLM KV event publisher: ${name} must be a positive integer, got ${value}`,
      { param: name },
    );
  }
  return value;
}
