import * as zmq from "zeromq";
import { asDynamoError, DynamoError } from "../errors/mod.ts";
import { Logger } from "../observability/mod.ts";
import { pauseAfterError, PollingReader } from "./_zmq_poll.ts";
import { KvEventBatcher, type KvEventUpdate } from "./kv_event_batcher.ts";
import { VllmEventConverter } from "./vllm_event_converter.ts";
import { requestVllmReplay } from "./vllm_replay_client.ts";
import {
  decodeSeq,
  decodeVllmBatch,
  decodeVllmMessage,
  type VllmEventBatch,
  type VllmMessage,
} from "./vllm_wire.ts";

const EMPTY_BATCH: VllmEventBatch = { ts: 0, events: [], dpRank: null };

/** Options for `VllmKvEventSubscriber`. */
export interface VllmKvEventSubscriberOptions {
  /**
   * The engine's PUB endpoint: `tcp://HOST:PORT` (a `*` host means this host, as Dynamo
   * attaches to vLLM), `ipc://…` or `inproc://…`. For a data-parallel engine, one subscriber
   * per rank, at `offsetEndpointPort(endpoint, rank)`.
   */
  readonly endpoint: string;
  /** Topic prefix to subscribe to. Default "" (everything). */
  readonly topic?: string;
  /** The engine's replay (ROUTER) endpoint; without one, missed batches are lost. */
  readonly replayEndpoint?: string;
  /**
   * Where the publisher's batch sequence starts. "zero" (vLLM, SGLang; the default): a first
   * batch numbered higher means earlier ones were missed. "first_seen": take the first
   * batch's number as the start (TensorRT-LLM numbers batches from the wall clock).
   */
  readonly sequenceStart?: "zero" | "first_seen";
  /** The worker's KV block size, which the router hashes with. */
  readonly blockSizeTokens: number;
  /** Rank for batches that carry none (vLLM's publisher always sets one). Default 0. */
  readonly dpRank?: number;
  /** Receives the merged, deduplicated events of each engine batch (never empty). */
  readonly onEvents: (updates: readonly KvEventUpdate[]) => void;
  /** See `KvEventBatcher`. Default 128. */
  readonly maxBatchBlocks?: number;
  /** ZMQ_MAXMSGSIZE: a larger message closes the connection. Default 32 MiB. */
  readonly maxMessageBytes?: number;
  /** ZMQ_RCVHWM: messages queued before ZeroMQ drops (and a gap follows). Default 100,000. */
  readonly receiveHighWaterMarkMessages?: number;
  /** One replay request may take this long. Default 2000 ms. */
  readonly replayTimeoutMs?: number;
  /** Longest pause between checks of an idle socket (see `_zmq_poll.ts`). Default 50 ms. */
  readonly idlePollMs?: number;
  readonly logger?: Logger;
}

/** What the subscriber has seen; every count only grows. */
export interface VllmSubscriberStats {
  /** Batches applied (live or replayed). */
  appliedBatches: number;
  /** Messages or replayed batches that did not decode; dropped (applied as empty). */
  malformedBatches: number;
  /** Batches the seq showed missing on the live socket. */
  missedBatches: number;
  /** Missed batches got back from the replay socket. */
  recoveredBatches: number;
  /** Missed batches gone for good (no replay socket, evicted from it, or it failed). */
  lostBatches: number;
  /** Times the seq went back (a publisher restart). */
  seqResets: number;
  /** Events of types this decoder does not know; skipped. */
  unknownEvents: number;
}

/**
 * A worker's listener for an engine's vLLM-format KV events (Dynamo's `zmq_listener.rs` and
 * event processor): a SUB socket on the engine's publisher; each batch is decoded,
 * converted to internal events (`VllmEventConverter`), deduplicated and merged
 * (`KvEventBatcher`), and handed to `onEvents` as soon as the batch is done.
 *
 * The engine's seq is tracked from 0 (the worker starts with nothing, so even a first batch
 * with seq > 0 means earlier ones were missed, e.g. while the subscription was still
 * reaching the publisher). A gap is logged and counted and, with a replay endpoint, filled
 * before the batch that revealed it is applied, so events stay in order. A seq that goes
 * back is a restarted publisher: tracking starts over from it. (Its blocks from before the
 * restart stay in the worker's view until removed or cleared, as in Dynamo.)
 */
export class VllmKvEventSubscriber {
  readonly endpoint: string;
  readonly stats: VllmSubscriberStats = {
    appliedBatches: 0,
    malformedBatches: 0,
    missedBatches: 0,
    recoveredBatches: 0,
    lostBatches: 0,
    seqResets: 0,
    unknownEvents: 0,
  };
  readonly converter: VllmEventConverter;
  readonly #options: VllmKvEventSubscriberOptions;
  readonly #logger: Logger;
  readonly #socket: zmq.Subscriber;
  readonly #reader: PollingReader;
  readonly #batcher: KvEventBatcher;
  readonly #closing = new AbortController();
  #out: KvEventUpdate[] = [];
  #expectedSeq = 0n;
  /** True until the first batch arrives (for sequenceStart "first_seen"). */
  #awaitingFirst = true;
  readonly #loop: Promise<void>;

  constructor(options: VllmKvEventSubscriberOptions) {
    this.#options = options;
    this.#logger = options.logger ?? new Logger("kv_events");
    this.endpoint = options.endpoint.replace(/^tcp:\/\/\*:/, "tcp://127.0.0.1:");
    if (!/^(tcp:\/\/.+:\d+|ipc:\/\/.+|inproc:\/\/.+)$/.test(this.endpoint)) {
      throw new DynamoError(
        "invalid_request",
        "invalid_endpoint",
        `Cannot subscribe to vLLM KV events at ${
          JSON.stringify(options.endpoint)
        }: not a tcp://host:port, ipc:// or inproc:// endpoint`,
      );
    }
    this.converter = new VllmEventConverter({
      blockSizeTokens: options.blockSizeTokens,
      logger: this.#logger,
    });
    this.#batcher = new KvEventBatcher({
      emit: (update) => this.#out.push(update),
      maxBatchBlocks: options.maxBatchBlocks,
      logger: this.#logger,
    });
    this.#socket = new zmq.Subscriber({
      linger: 0,
      receiveTimeout: 0,
      maxMessageSize: options.maxMessageBytes ?? 32 * 1024 * 1024,
      receiveHighWaterMark: options.receiveHighWaterMarkMessages ?? 100_000,
    });
    try {
      this.#socket.subscribe(options.topic ?? "");
      this.#socket.connect(this.endpoint);
    } catch (err) {
      this.#socket.close();
      throw new DynamoError(
        "invalid_request",
        "invalid_endpoint",
        `Cannot subscribe to vLLM KV events at ${this.endpoint}: ${
          err instanceof Error ? err.message : String(err)
        }`,
        { cause: err },
      );
    }
    this.#reader = new PollingReader(this.#socket, options.idlePollMs ?? 50);
    this.#loop = this.#receive();
  }

  /** The seq the next live batch should have. */
  get expectedSeq(): bigint {
    return this.#expectedSeq;
  }

  /** Closes the socket and waits for the receive loop (and any replay) to end. */
  async close(): Promise<void> {
    this.#closing.abort();
    if (!this.#socket.closed) this.#socket.close();
    this.#reader.wake();
    await this.#loop;
  }

  async #receive(): Promise<void> {
    for (;;) {
      let frames: Uint8Array[] | undefined;
      try {
        frames = await this.#reader.next();
      } catch (err) {
        this.#logger.error("Cannot receive vLLM KV events", { endpoint: this.endpoint, err });
        await pauseAfterError();
        continue;
      }
      if (frames === undefined) return;
      let message: VllmMessage | undefined;
      try {
        message = decodeVllmMessage(frames);
      } catch (err) {
        this.#dropMalformed("Dropping a vLLM KV event message", err);
      }
      if (message !== undefined) await this.#accept(message.seq, message.batch);
      else if (frames.length === 3 && frames[1]!.length === 8) {
        // A readable seq still counts: the batch is lost, but it is no gap to replay.
        await this.#accept(decodeSeq(frames[1]!), EMPTY_BATCH);
      }
    }
  }

  #dropMalformed(what: string, err: unknown): void {
    // Logged the first few times, then every 1000th: a broken publisher must not flood logs.
    if (this.stats.malformedBatches++ < 3 || this.stats.malformedBatches % 1000 === 0) {
      this.#logger.warn(what, {
        endpoint: this.endpoint,
        malformed: this.stats.malformedBatches,
        err: asDynamoError(err).message,
      });
    }
  }

  async #accept(seq: bigint, batch: VllmEventBatch): Promise<void> {
    if (this.#awaitingFirst && this.#options.sequenceStart === "first_seen") {
      this.#expectedSeq = seq;
    }
    this.#awaitingFirst = false;
    if (seq < this.#expectedSeq) {
      this.stats.seqResets++;
      this.#logger.warn("vLLM KV event seq went back: the publisher restarted", {
        endpoint: this.endpoint,
        expected_seq: this.#expectedSeq.toString(),
        seq: seq.toString(),
      });
    } else if (seq > this.#expectedSeq) {
      await this.#recover(seq);
      if (this.#closing.signal.aborted) return; // closed during the replay: deliver nothing more
    }
    this.#apply(batch);
    this.#expectedSeq = seq + 1n;
  }

  /** Fills `[expectedSeq, seq)` from the replay socket, as far as it still can. */
  async #recover(seq: bigint): Promise<void> {
    const missing = seq - this.#expectedSeq;
    this.stats.missedBatches += Number(missing);
    this.#logger.warn("vLLM KV event batches missed", {
      endpoint: this.endpoint,
      from_seq: this.#expectedSeq.toString(),
      count: missing.toString(),
      replay: this.#options.replayEndpoint !== undefined,
    });
    const replayEndpoint = this.#options.replayEndpoint;
    if (replayEndpoint !== undefined) {
      try {
        const replay = await requestVllmReplay(replayEndpoint, this.#expectedSeq, {
          timeoutMs: this.#options.replayTimeoutMs,
          signal: this.#closing.signal,
        });
        // Only the missing ones: `seq` itself and later batches also come on the live socket.
        for (const { seq: s, payload } of replay.batches) {
          if (s < this.#expectedSeq) continue;
          if (s >= seq) break;
          this.stats.recoveredBatches++;
          this.stats.lostBatches += Number(s - this.#expectedSeq); // evicted before we asked
          this.#expectedSeq = s + 1n;
          let batch: VllmEventBatch;
          try {
            batch = decodeVllmBatch(payload);
          } catch (err) {
            this.#dropMalformed("Dropping a replayed vLLM KV event batch", err);
            continue;
          }
          this.#apply(batch);
        }
      } catch (err) {
        this.#logger.warn("vLLM KV event replay failed", { endpoint: replayEndpoint, err });
      }
    }
    if (seq > this.#expectedSeq) {
      const lost = seq - this.#expectedSeq;
      this.stats.lostBatches += Number(lost);
      this.#logger.warn(
        "vLLM KV event batches lost: the router's view of this worker may be stale",
        {
          endpoint: this.endpoint,
          count: lost.toString(),
        },
      );
      this.#expectedSeq = seq;
    }
  }

  #apply(batch: VllmEventBatch): void {
    this.stats.appliedBatches++;
    this.stats.unknownEvents += batch.skippedEventTypes?.length ?? 0;
    const dpRank = batch.dpRank ?? this.#options.dpRank ?? 0;
    for (const event of batch.events) {
      const update = this.converter.convert(event, dpRank);
      if (update !== undefined) this.#batcher.push(update);
    }
    // Flushing here, not on a timer: merging never delays an event past its own batch.
    this.#batcher.flush();
    if (this.#out.length === 0) return;
    const out = this.#out;
    this.#out = [];
    try {
      this.#options.onEvents(out);
    } catch (err) {
      this.#logger.error("KV event handler failed", { err });
    }
  }
}
