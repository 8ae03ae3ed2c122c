import { asDynamoError, DynamoError, type WireError } from "../errors/mod.ts";
import type { Logger } from "../observability/mod.ts";
import { FrameConnection } from "./_frame_connection.ts";
import { type Message, PROTOCOL_VERSION } from "./_messages.ts";
import { CANCELLED, ServerStream } from "./_server_stream.ts";

/** Handler context: aborted when the client cancels, disconnects, or the server shuts down. */
export interface StreamContext {
  readonly signal: AbortSignal;
  readonly headers: Readonly<Record<string, string>>;
}

/** Serves one endpoint: takes the request payload, yields response items. */
export type StreamHandler = (payload: unknown, ctx: StreamContext) => AsyncIterable<unknown>;

/** What a connection needs from its server. */
export interface ServerConnectionHost {
  readonly logger: Logger;
  readonly maxFrameBytes: number;
  readonly maxQueuedFrames: number;
  readonly maxQueuedBytes: number;
  readonly maxStreamsPerConnection: number;
  readonly maxWindowItems: number;
  readonly handshakeTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly peerSilenceTimeoutMs: number;
  readonly closeGraceMs: number;
  /** Why new streams are refused (e.g. draining), or undefined while they are accepted. */
  refusal(): DynamoError | undefined;
  handlerFor(endpoint: string): StreamHandler | undefined;
  /** Called when a stream starts or finishes on any connection. */
  streamsChanged(): void;
  /** Called once when the connection has closed. */
  connectionClosed(connection: ServerConnection): void;
}

/** The server side of one client connection: validates messages and pumps streams. */
export class ServerConnection {
  readonly frames: FrameConnection;
  #host: ServerConnectionHost;
  #streams = new Map<number, ServerStream>();
  #pumps = new Set<Promise<void>>();
  #helloReceived = false;
  #lastOpenedId = 0;
  #lastActivityMs = performance.now();
  #handshakeTimer: ReturnType<typeof setTimeout>;
  #watchdog: ReturnType<typeof setInterval>;

  constructor(conn: Deno.Conn, peer: string, host: ServerConnectionHost) {
    this.#host = host;
    this.frames = new FrameConnection(conn, {
      peer,
      maxFrameBytes: host.maxFrameBytes,
      maxQueuedFrames: host.maxQueuedFrames,
      maxQueuedBytes: host.maxQueuedBytes,
      logger: host.logger,
      onMessage: (m) => this.#onMessage(m),
      onClose: (reason) => this.#onClose(reason),
    });
    this.frames.sendControl({ t: "hello", v: PROTOCOL_VERSION });
    this.#handshakeTimer = setTimeout(() => {
      if (this.#helloReceived) return;
      this.frames.close(
        new DynamoError(
          "unavailable",
          "protocol_error",
          `Closed connection from ${peer}: no hello within ${host.handshakeTimeoutMs} ms`,
        ),
      );
    }, host.handshakeTimeoutMs);
    Deno.unrefTimer(this.#handshakeTimer);
    const tickMs = Math.max(1, Math.min(host.idleTimeoutMs, host.peerSilenceTimeoutMs) / 3);
    this.#watchdog = setInterval(() => this.#tick(), tickMs);
    Deno.unrefTimer(this.#watchdog);
  }

  get streams(): ReadonlyMap<number, ServerStream> {
    return this.#streams;
  }

  /** Resolves when every pump of this connection has finished. */
  async pumpsDone(): Promise<void> {
    while (this.#pumps.size > 0) await Promise.all(this.#pumps);
  }

  /** Cancels every stream: aborts the handlers and tells the client. */
  cancelAll(reason: DynamoError): void {
    for (const stream of this.#streams.values()) {
      if (stream.cancel(reason)) this.frames.sendControl({ t: "cancel", s: stream.id });
    }
  }

  #onMessage(m: Message): void {
    if (!this.#helloReceived) {
      if (m.t !== "hello") throw violation(`expected hello, got ${m.t}`);
      if (m.v !== PROTOCOL_VERSION) {
        throw new DynamoError(
          "unavailable",
          "protocol_mismatch",
          `Closed connection from ${this.frames.peer}: unsupported protocol version ${m.v} (expected ${PROTOCOL_VERSION})`,
        );
      }
      this.#helloReceived = true;
      clearTimeout(this.#handshakeTimer);
      return;
    }
    switch (m.t) {
      case "open":
        return this.#open(m);
      case "cancel":
        this.#known(m.s)?.cancel(
          new DynamoError("cancelled", "cancelled_by_client", "Stream was cancelled by the client"),
        );
        return;
      case "credit": {
        const stream = this.#known(m.s);
        if (stream !== undefined && !stream.addCredit(m.n)) {
          throw violation(`credit of ${m.n} exceeds the window of stream ${m.s}`);
        }
        return;
      }
      case "ping":
        this.frames.sendControl({ t: "pong" });
        return;
      case "pong":
        return;
      default:
        throw violation(`unexpected ${m.t} from a client`);
    }
  }

  /** The live stream `id`, or undefined for one that already finished; throws for ids never opened. */
  #known(id: number): ServerStream | undefined {
    if (id > this.#lastOpenedId) {
      throw violation(`message for stream ${id}, which was never opened`);
    }
    return this.#streams.get(id);
  }

  #open(m: Extract<Message, { t: "open" }>): void {
    if (m.s <= this.#lastOpenedId) throw violation(`stream id ${m.s} reused or out of order`);
    this.#lastOpenedId = m.s;
    const refusal = this.#refuse(m);
    if (refusal !== undefined) {
      this.frames.sendControl({ t: "error", s: m.s, error: refusal.toWire() });
      return;
    }
    const handler = this.#host.handlerFor(m.endpoint)!;
    if (this.#streams.size === 0) this.frames.markAlive();
    const stream = new ServerStream(m.s, m.endpoint, m.window);
    this.#streams.set(m.s, stream);
    this.#host.streamsChanged();
    const pump = this.#pump(stream, handler, m.payload, m.headers);
    this.#pumps.add(pump);
    pump.finally(() => this.#pumps.delete(pump));
  }

  #refuse(m: Extract<Message, { t: "open" }>): DynamoError | undefined {
    const refusal = this.#host.refusal();
    if (refusal !== undefined) return refusal;
    if (this.#host.handlerFor(m.endpoint) === undefined) {
      return new DynamoError(
        "not_found",
        "unknown_endpoint",
        `Cannot open stream: no endpoint "${m.endpoint}" on this worker`,
      );
    }
    if (m.window > this.#host.maxWindowItems) {
      return new DynamoError(
        "invalid_request",
        "window_too_large",
        `Cannot open stream: window of ${m.window} items exceeds the limit of ${this.#host.maxWindowItems}`,
      );
    }
    if (this.#streams.size >= this.#host.maxStreamsPerConnection) {
      return new DynamoError(
        "overloaded",
        "too_many_streams",
        `Cannot open stream: ${this.#streams.size} streams already open on this connection (limit ${this.#host.maxStreamsPerConnection})`,
      );
    }
    return undefined;
  }

  async #pump(
    stream: ServerStream,
    handler: StreamHandler,
    payload: unknown,
    headers: Readonly<Record<string, string>>,
  ): Promise<void> {
    let iterator: AsyncIterator<unknown> | undefined;
    let exhausted = false;
    try {
      iterator = handler(payload, { signal: stream.signal, headers })[Symbol.asyncIterator]();
      for (;;) {
        if (!(await stream.waitForCredit())) return;
        let next: IteratorResult<unknown> | typeof CANCELLED;
        try {
          next = await stream.race(iterator.next());
        } catch (err) {
          exhausted = true;
          throw err;
        }
        if (next === CANCELLED) return;
        if (next.done === true) {
          exhausted = true;
          this.#finish(stream, { t: "end", s: stream.id });
          return;
        }
        const frame = this.frames.encode({ t: "item", s: stream.id, data: next.value });
        stream.takeCredit();
        await this.frames.send(frame);
      }
    } catch (err) {
      if (!stream.isCancelled && this.frames.isOpen) {
        this.#finish(stream, { t: "error", s: stream.id, error: this.#wireError(err, stream) });
      }
    } finally {
      this.#remove(stream);
      if (iterator !== undefined && !exhausted) await this.#returnIterator(iterator, stream);
    }
  }

  #finish(stream: ServerStream, message: Message): void {
    this.#remove(stream);
    this.frames.sendControl(message);
  }

  #remove(stream: ServerStream): void {
    if (this.#streams.get(stream.id) !== stream) return;
    this.#streams.delete(stream.id);
    if (this.#streams.size === 0) this.#lastActivityMs = performance.now();
    this.#host.streamsChanged();
  }

  /** Runs the generator's `finally`, waiting at most closeGraceMs for a handler that ignores its signal. */
  async #returnIterator(iterator: AsyncIterator<unknown>, stream: ServerStream): Promise<void> {
    if (iterator.return === undefined) return;
    const returned = Promise.resolve().then(() => iterator.return!()).then(
      () => true,
      (err) => {
        this.#host.logger.debug("Handler failed while being cancelled", {
          endpoint: stream.endpoint,
          err,
        });
        return true;
      },
    );
    const graceMs = this.#host.closeGraceMs;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const gaveUp = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), graceMs);
      Deno.unrefTimer(timer);
    });
    const stopped = await Promise.race([returned, gaveUp]);
    clearTimeout(timer);
    if (!stopped) {
      this.#host.logger.warn("Handler did not stop after cancellation", {
        endpoint: stream.endpoint,
        graceMs,
      });
    }
  }

  #wireError(err: unknown, stream: ServerStream): WireError {
    const error = asDynamoError(err);
    if (error.errorClass !== "internal") return error.toWire();
    this.#host.logger.error("Handler failed", {
      endpoint: stream.endpoint,
      peer: this.frames.peer,
      reason: error.reason,
      err: error.cause instanceof Error ? error.cause : error,
      stack: error.cause instanceof Error ? error.cause.stack : error.stack,
    });
    return {
      class: "internal",
      reason: error.reason,
      message: `Internal error in endpoint "${stream.endpoint}"; see the worker's log`,
    };
  }

  #tick(): void {
    const nowMs = performance.now();
    if (this.#streams.size > 0) {
      const silentMs = nowMs - this.frames.lastReceivedMs;
      if (silentMs > this.#host.peerSilenceTimeoutMs) {
        this.frames.close(
          new DynamoError(
            "unavailable",
            "disconnected",
            `Closed connection from ${this.frames.peer}: nothing received for ${
              Math.round(silentMs)
            } ms`,
          ),
        );
      }
      return;
    }
    const idleMs = nowMs - Math.max(this.#lastActivityMs, this.frames.lastReceivedMs);
    if (idleMs > this.#host.idleTimeoutMs) {
      this.frames.close(
        new DynamoError(
          "unavailable",
          "idle_timeout",
          `Closed idle connection from ${this.frames.peer}`,
        ),
      );
    }
  }

  #onClose(reason: DynamoError): void {
    clearTimeout(this.#handshakeTimer);
    clearInterval(this.#watchdog);
    if (reason.reason !== "server_closed" && reason.reason !== "idle_timeout") {
      this.#host.logger.debug("Connection closed", {
        peer: this.frames.peer,
        reason: reason.message,
      });
    }
    const cancel = new DynamoError(
      "cancelled",
      "disconnected",
      `Client ${this.frames.peer} went away`,
      { cause: reason },
    );
    for (const stream of this.#streams.values()) stream.cancel(cancel);
    this.#host.connectionClosed(this);
  }
}

function violation(detail: string): DynamoError {
  return new DynamoError(
    "unavailable",
    "protocol_error",
    `Cannot serve request-plane connection: ${detail}`,
  );
}
