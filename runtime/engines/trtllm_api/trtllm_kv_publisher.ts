import { Packr } from "msgpackr";
import * as zmq from "zeromq";
import { DynamoError } from "../../errors/mod.ts";
import { Logger } from "../../observability/mod.ts";
import type { KvCacheEvent, KvCacheEventData } from "../../protocol/mod.ts";

/** Options of `TrtllmKvEventPublisher.bind`. */
export interface TrtllmKvEventPublisherOptions {
  /** Where the PUB socket binds: `tcp://*:PORT` or `tcp://HOST:PORT` (TensorRT-LLM always binds). */
  readonly endpoint: string;
  readonly topic: string;
  readonly blockSizeTokens: number;
  /** An empty batch after this long without one (TensorRT-LLM: 5 s). */
  readonly heartbeatMs?: number;
  /** Batches waiting for the socket; past it the oldest is dropped. Default 10,000. */
  readonly maxQueuedBatches?: number;
  readonly logger?: Logger;
}

// Objects encode as msgpack maps, bigints as 64-bit integers.
const packr = new Packr({ useRecords: false });

/**
 * TensorRT-LLM's streaming KV event publisher as the stand-in models it
 * (`ZmqEventPublisher` in TensorRT-LLM's KV cache event wire module): a PUB socket sending
 * `[topic, seq (u64 BE), msgpack batch]`, the batch the positional `[ts, events,
 * data_parallel_rank]`, each event a **map** tagged by `"type"` (`BlockStored` with
 * `block_hashes`, `parent_block_hash`, `token_ids`, `block_size`, `lora_id`, `medium`,
 * `lora_name`; `BlockRemoved` with `block_hashes`, `medium`; `AllBlocksCleared`), hashes as
 * signed 64-bit integers (`truncate_sha256_hash_to_int64`). As there, seq starts at the
 * wall clock in nanoseconds (so it keeps growing across restarts), the first batch is an
 * `AllBlocksCleared` (the publisher's startup resync), and a quiet publisher sends an empty
 * heartbeat batch every 5 s. The replay socket is not modelled.
 */
export class TrtllmKvEventPublisher {
  readonly endpoint: string;
  readonly #pub: zmq.Publisher;
  readonly #topic: Uint8Array;
  readonly #blockSize: number;
  readonly #log: Logger;
  readonly #maxQueued: number;
  readonly #queue: Uint8Array[][] = [];
  readonly #heartbeat: ReturnType<typeof setInterval>;
  readonly #heartbeatMs: number;
  #seq: bigint;
  #lastSendMs = 0;
  #sending: Promise<void> | undefined;
  #closed = false;

  private constructor(
    pub: zmq.Publisher,
    endpoint: string,
    options: TrtllmKvEventPublisherOptions,
  ) {
    this.#pub = pub;
    this.endpoint = endpoint;
    this.#topic = new TextEncoder().encode(options.topic);
    this.#blockSize = options.blockSizeTokens;
    this.#log = options.logger ?? new Logger("trtllm_api");
    this.#maxQueued = options.maxQueuedBatches ?? 10_000;
    this.#heartbeatMs = options.heartbeatMs ?? 5_000;
    this.#seq = BigInt(Date.now()) * 1_000_000n;
    this.#heartbeat = setInterval(() => {
      if (Date.now() - this.#lastSendMs >= this.#heartbeatMs) this.#send([]);
    }, Math.max(10, Math.min(this.#heartbeatMs, 1_000)));
    Deno.unrefTimer(this.#heartbeat);
    this.#send([{ type: "AllBlocksCleared" }]);
  }

  /** Binds the PUB socket and publishes the startup `AllBlocksCleared`. */
  static async bind(options: TrtllmKvEventPublisherOptions): Promise<TrtllmKvEventPublisher> {
    const pub = new zmq.Publisher({ linger: 0, sendTimeout: 0, sendHighWaterMark: 100_000 });
    try {
      await pub.bind(options.endpoint);
    } catch (err) {
      pub.close();
      throw new DynamoError(
        "unavailable",
        "listen_failed",
        `Cannot bind the KV event publisher on ${options.endpoint}: ${
          err instanceof Error ? err.message : String(err)
        }`,
      );
    }
    const bound = (pub.lastEndpoint ?? options.endpoint)
      .replace(/^tcp:\/\/(0\.0\.0\.0|\*):/, "tcp://127.0.0.1:");
    return new TrtllmKvEventPublisher(pub, bound, options);
  }

  /** Publishes one engine iteration's events as one batch. */
  publish(events: readonly KvCacheEvent[]): void {
    if (events.length === 0 || this.#closed) return;
    this.#send(events.map((e) => this.#wireEvent(e.data)));
  }

  /** Stops the heartbeat, sends what is queued and closes the socket. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#heartbeat);
    await this.#sending;
    this.#pub.close();
  }

  #wireEvent(data: KvCacheEventData): Record<string, unknown> {
    if (data === "cleared") return { type: "AllBlocksCleared" };
    if ("removed" in data) {
      return {
        type: "BlockRemoved",
        block_hashes: data.removed.block_hashes.map(i64),
        medium: "GPU",
      };
    }
    const tokenIds: number[] = [];
    for (const b of data.stored.blocks) tokenIds.push(...(b.token_ids ?? []));
    return {
      type: "BlockStored",
      block_hashes: data.stored.blocks.map((b) => i64(b.block_hash)),
      parent_block_hash: data.stored.parent_hash === null ? null : i64(data.stored.parent_hash),
      token_ids: tokenIds,
      block_size: this.#blockSize,
      lora_id: null,
      medium: "GPU",
      lora_name: null,
    };
  }

  #send(events: readonly Record<string, unknown>[]): void {
    if (this.#closed) return;
    const seq = new Uint8Array(8);
    new DataView(seq.buffer).setBigUint64(0, this.#seq++);
    const payload = packr.pack([Date.now() / 1000, events, 0]);
    if (this.#queue.length >= this.#maxQueued) this.#queue.shift();
    this.#queue.push([this.#topic, seq, payload]);
    this.#lastSendMs = Date.now();
    this.#sending ??= this.#drain();
  }

  async #drain(): Promise<void> {
    for (;;) {
      const message = this.#queue.shift();
      if (message === undefined) break;
      try {
        await this.#pub.send(message);
      } catch (err) {
        if (this.#pub.closed) break;
        this.#log.warn("Cannot send a KV event batch", { err });
      }
    }
    this.#sending = undefined;
  }
}

/** A u64 hash as the signed 64-bit integer with the same bits. */
function i64(hash: bigint): bigint {
  return BigInt.asIntN(64, hash);
}
