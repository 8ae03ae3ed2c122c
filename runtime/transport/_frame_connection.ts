import { DynamoError } from "../errors/mod.ts";
import type { Logger } from "../observability/mod.ts";
import { type Deferred, deferred } from "../util/mod.ts";
import { decodeMsgpack, encodeFrame, FrameDecoder } from "./frame_codec.ts";
import { type Message, parseMessage } from "./_messages.ts";

/** Bytes read from the socket at a time. */
const READ_CHUNK_BYTES = 64 * 1024;
/** Frames queued back to back are written together, up to this many bytes per write. */
const WRITE_BATCH_BYTES = 256 * 1024;

export interface FrameConnectionOptions {
  /** `host:port` of the other end, for messages. */
  readonly peer: string;
  readonly maxFrameBytes: number;
  /** Frames `send` may queue before it waits; control frames may use as many again. */
  readonly maxQueuedFrames: number;
  /** Bytes `send` may queue before it waits (one frame always fits in an empty queue). */
  readonly maxQueuedBytes: number;
  readonly logger: Logger;
  /** Called for every valid message, in order. Throwing closes the connection with that error. */
  readonly onMessage: (message: Message) => void;
  /** Called once, when the connection closes for any reason (a local close included). */
  readonly onClose: (reason: DynamoError) => void;
}

/**
 * One TCP connection carrying request-plane frames: a read loop that decodes and dispatches
 * messages without ever waiting on the application, and a single writer that awaits every
 * socket write (so TCP backpressure reaches the senders) behind a bounded queue of frames.
 */
export class FrameConnection {
  readonly peer: string;
  readonly maxFrameBytes: number;
  #conn: Deno.Conn;
  #options: FrameConnectionOptions;
  #queue: Uint8Array[] = [];
  #queuedBytes = 0;
  /** Frames waiting for room in the queue, first come first queued. */
  #waiting: { frame: Uint8Array; queued: Deferred<void> }[] = [];
  #writerWake: Deferred<void> | undefined;
  #writing = false;
  #flushWaiters: Deferred<void>[] = [];
  #closeReason: DynamoError | undefined;
  #lastReceivedMs = performance.now();
  #done: Promise<void>;

  constructor(conn: Deno.Conn, options: FrameConnectionOptions) {
    this.#conn = conn;
    this.#options = options;
    this.peer = options.peer;
    this.maxFrameBytes = options.maxFrameBytes;
    this.#done = Promise.all([this.#readLoop(), this.#writeLoop()]).then(() => {});
  }

  /** Why the connection closed, or undefined while it is open. */
  get closeReason(): DynamoError | undefined {
    return this.#closeReason;
  }

  get isOpen(): boolean {
    return this.#closeReason === undefined;
  }

  /** `performance.now()` when bytes last arrived (or when the connection was made). */
  get lastReceivedMs(): number {
    return this.#lastReceivedMs;
  }

  /** Resolves when both loops have ended, after `close`. */
  get done(): Promise<void> {
    return this.#done;
  }

  /** Forgets past silence, e.g. when streams start on a connection that was idle. */
  markAlive(): void {
    this.#lastReceivedMs = performance.now();
  }

  /** Encodes a message; throws `invalid_request`/`frame_too_large` for an oversized one. */
  encode(message: Message): Uint8Array {
    return encodeFrame(message, this.maxFrameBytes);
  }

  /**
   * Queues an encoded frame, waiting while the queue is full. Frames are queued strictly in
   * the order of the calls, so a stream's frames (and stream ids) keep their order. Rejects
   * with the close reason if the connection closes first.
   */
  send(frame: Uint8Array): Promise<void> {
    if (this.#closeReason !== undefined) return Promise.reject(this.#closeReason);
    if (this.#waiting.length === 0 && !this.#isFull()) {
      this.#enqueue(frame);
      return Promise.resolve();
    }
    const queued = deferred<void>();
    this.#waiting.push({ frame, queued });
    return queued.promise;
  }

  /**
   * Queues a small control frame (credit, cancel, ping, end, …) without waiting. These come
   * in proportion to what the peer sends us, so a peer that sends but does not read would
   * grow the queue: past twice the limit the connection is closed. No-op once closed.
   */
  sendControl(message: Message): void {
    if (this.#closeReason !== undefined) return;
    if (this.#queue.length >= 2 * this.#options.maxQueuedFrames) {
      this.close(
        new DynamoError(
          "unavailable",
          "write_queue_full",
          `Closed connection to ${this.peer}: the peer is not reading (${this.#queue.length} frames queued)`,
        ),
      );
      return;
    }
    this.#enqueue(this.encode(message));
  }

  /** Closes now: queued frames are dropped, waiters fail with `reason`. Idempotent. */
  close(reason: DynamoError): void {
    if (this.#closeReason !== undefined) return;
    this.#closeReason = reason;
    try {
      this.#conn.close();
    } catch {
      // Already closed by the runtime.
    }
    this.#queue = [];
    this.#queuedBytes = 0;
    for (const w of this.#waiting.splice(0)) w.queued.reject(reason);
    for (const w of this.#flushWaiters.splice(0)) w.resolve();
    this.#wakeWriter();
    try {
      this.#options.onClose(reason);
    } catch (err) {
      this.#options.logger.error("Connection close handler failed", { peer: this.peer, err });
    }
  }

  /** Waits up to `flushMs` for queued frames to reach the socket, then closes. */
  async closeAfterFlush(reason: DynamoError, flushMs: number): Promise<void> {
    if (
      this.#closeReason === undefined &&
      (this.#queue.length > 0 || this.#waiting.length > 0 || this.#writing)
    ) {
      const flushed = deferred<void>();
      this.#flushWaiters.push(flushed);
      const timer = setTimeout(() => flushed.resolve(), flushMs);
      Deno.unrefTimer(timer);
      await flushed.promise;
      clearTimeout(timer);
    }
    this.close(reason);
    await this.#done;
  }

  #isFull(): boolean {
    return this.#queue.length >= this.#options.maxQueuedFrames ||
      (this.#queue.length > 0 && this.#queuedBytes >= this.#options.maxQueuedBytes);
  }

  #enqueue(frame: Uint8Array): void {
    this.#queue.push(frame);
    this.#queuedBytes += frame.length;
    this.#wakeWriter();
  }

  #wakeWriter(): void {
    const w = this.#writerWake;
    this.#writerWake = undefined;
    w?.resolve();
  }

  async #writeLoop(): Promise<void> {
    while (this.#closeReason === undefined) {
      if (this.#queue.length === 0) {
        for (const w of this.#flushWaiters.splice(0)) w.resolve();
        this.#writerWake = deferred<void>();
        await this.#writerWake.promise;
        continue;
      }
      const batch = this.#takeBatch();
      this.#writing = true;
      try {
        await writeAll(this.#conn, batch);
      } catch (err) {
        this.close(this.#lostError(err));
        return;
      } finally {
        this.#writing = false;
      }
      while (this.#waiting.length > 0 && !this.#isFull()) {
        const w = this.#waiting.shift()!;
        this.#enqueue(w.frame);
        w.queued.resolve();
      }
    }
  }

  #takeBatch(): Uint8Array {
    const first = this.#queue.shift()!;
    this.#queuedBytes -= first.length;
    if (this.#queue.length === 0 || first.length >= WRITE_BATCH_BYTES) return first;
    let bytes = first.length;
    let count = 1;
    while (count <= this.#queue.length) {
      const next = this.#queue[count - 1]!;
      if (bytes + next.length > WRITE_BATCH_BYTES) break;
      bytes += next.length;
      count++;
    }
    const rest = this.#queue.splice(0, count - 1);
    this.#queuedBytes -= bytes - first.length;
    const batch = new Uint8Array(bytes);
    batch.set(first, 0);
    let offset = first.length;
    for (const frame of rest) {
      batch.set(frame, offset);
      offset += frame.length;
    }
    return batch;
  }

  async #readLoop(): Promise<void> {
    const decoder = new FrameDecoder(this.maxFrameBytes);
    const buffer = new Uint8Array(READ_CHUNK_BYTES);
    const onFrame = (body: Uint8Array): void => {
      if (this.#closeReason !== undefined) return;
      this.#options.onMessage(parseMessage(decodeBody(body)));
    };
    try {
      for (;;) {
        const n = await this.#conn.read(buffer);
        if (this.#closeReason !== undefined) return;
        if (n === null) {
          this.close(
            new DynamoError(
              "unavailable",
              "disconnected",
              `Lost connection to ${this.peer}: closed by peer`,
            ),
          );
          return;
        }
        this.#lastReceivedMs = performance.now();
        decoder.push(buffer.subarray(0, n), onFrame);
      }
    } catch (err) {
      if (this.#closeReason !== undefined) return;
      if (err instanceof DynamoError) {
        if (err.reason === "protocol_error") {
          this.#options.logger.warn("Closing connection after a protocol violation", {
            peer: this.peer,
            err,
          });
        }
        this.close(err);
      } else {
        this.close(this.#lostError(err));
      }
    }
  }

  #lostError(err: unknown): DynamoError {
    const detail = err instanceof Deno.errors.ConnectionReset
      ? "connection reset by peer"
      : err instanceof Deno.errors.BrokenPipe
      ? "broken pipe"
      : err instanceof Error
      ? err.message
      : String(err);
    return new DynamoError(
      "unavailable",
      "disconnected",
      `Lost connection to ${this.peer}: ${detail}`,
      {
        cause: err,
      },
    );
  }
}

function decodeBody(body: Uint8Array): unknown {
  try {
    return decodeMsgpack(body);
  } catch (err) {
    throw new DynamoError(
      "unavailable",
      "protocol_error",
      `Cannot read request-plane frame: ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    );
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) {
    offset += await conn.write(bytes.subarray(offset));
  }
}

/** `host:port`, with brackets around an IPv6 host. */
export function formatPeer(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}
