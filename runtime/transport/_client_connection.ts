import { DynamoError } from "../errors/mod.ts";
import type { Logger } from "../observability/mod.ts";
import { type Deferred, deferred } from "../util/mod.ts";
import { formatPeer, FrameConnection } from "./_frame_connection.ts";
import { type Message, PROTOCOL_VERSION } from "./_messages.ts";
import { ClientStream, type ClientStreamLink } from "./_client_stream.ts";

/** Resolved client settings, shared by every connection of one client. */
export interface ClientConnectionSettings {
  readonly connectTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly heartbeatMs: number;
  readonly maxFrameBytes: number;
  readonly windowItems: number;
  readonly maxStreamsPerConnection: number;
  readonly maxQueuedFrames: number;
  readonly maxQueuedBytes: number;
  readonly logger: Logger;
}

/** A peer counts as dead after this many heartbeats without receiving anything. */
const DEAD_AFTER_HEARTBEATS = 3;

/**
 * One multiplexed connection from a client to a server. `ready` settles once TCP is
 * connected and the server's hello has arrived (both within connectTimeoutMs); until then
 * nothing has reached the server, so failures are `connect_failed` / `connect_timeout`.
 */
export class ClientConnection implements ClientStreamLink {
  readonly peer: string;
  readonly ready: Promise<void>;
  #host: string;
  #port: number;
  #settings: ClientConnectionSettings;
  #onClosed: (c: ClientConnection) => void;
  #frames: FrameConnection | undefined;
  #helloReceived: Deferred<void> = deferred();
  #connectAbort = new AbortController();
  #closeReason: DynamoError | undefined;
  #streams = new Map<number, ClientStream>();
  #nextStreamId = 1;
  #connected = false;
  #lastActivityMs = performance.now();
  #lastPingMs = 0;
  #ticker: ReturnType<typeof setInterval> | undefined;
  #done: Promise<void>;

  constructor(
    host: string,
    port: number,
    settings: ClientConnectionSettings,
    onClosed: (c: ClientConnection) => void,
  ) {
    this.#host = host;
    this.#port = port;
    this.peer = formatPeer(host, port);
    this.#settings = settings;
    this.#onClosed = onClosed;
    this.ready = this.#connect();
    // Callers that gave up waiting (their signal aborted) must not leave this unobserved.
    this.ready.catch(() => {});
    this.#done = this.ready.then(() => this.#frames!.done, () => this.#frames?.done);
  }

  get isOpen(): boolean {
    return this.#closeReason === undefined;
  }

  get streamCount(): number {
    return this.#streams.size;
  }

  /** Connected, open, and carrying no streams: safe to close. */
  get isIdle(): boolean {
    return this.#connected && this.isOpen && this.#streams.size === 0;
  }

  /** Resolves when the socket and its loops are gone, after `close`. */
  get done(): Promise<void> {
    return this.#done;
  }

  /**
   * Opens a stream: registers it, then queues the open frame (waiting while the write queue
   * is full). Throws `frame_too_large` before anything is sent, `overloaded` at the stream
   * limit, and `connect_failed` if the connection closes before the open frame was queued
   * (the request never left, so it may be retried elsewhere).
   */
  async open(
    endpoint: string,
    payload: unknown,
    headers: Record<string, string>,
  ): Promise<ClientStream> {
    const frames = this.#frames;
    if (frames === undefined || this.#closeReason !== undefined) {
      throw this.#notSent(this.#closeReason);
    }
    if (this.#streams.size >= this.#settings.maxStreamsPerConnection) {
      throw new DynamoError(
        "overloaded",
        "too_many_streams",
        `Cannot open stream to ${this.peer}: ${this.#streams.size} streams already open (limit ${this.#settings.maxStreamsPerConnection})`,
      );
    }
    const id = this.#nextStreamId++;
    const window = this.#settings.windowItems;
    const frame = frames.encode({ t: "open", s: id, endpoint, headers, payload, window });
    const stream = new ClientStream(id, window, this);
    if (this.#streams.size === 0) frames.markAlive();
    this.#streams.set(id, stream);
    try {
      await frames.send(frame);
    } catch (err) {
      this.finished(stream);
      throw this.#notSent(err);
    }
    stream.openQueued();
    return stream;
  }

  #notSent(cause: unknown): DynamoError {
    const detail = cause instanceof Error ? `: ${cause.message}` : "";
    return new DynamoError(
      "unavailable",
      "connect_failed",
      `Cannot send request to ${this.peer}: the connection closed before it was sent${detail}`,
      { cause },
    );
  }

  /** Closes the connection; open streams fail with `reason`. Idempotent. */
  close(reason: DynamoError): void {
    if (this.#closeReason !== undefined) return;
    this.#closeReason = reason;
    this.#connectAbort.abort(reason);
    if (this.#frames !== undefined) this.#frames.close(reason);
    else this.#onClosed(this);
  }

  sendCredit(stream: ClientStream, n: number): void {
    this.#frames?.sendControl({ t: "credit", s: stream.id, n });
  }

  sendCancel(stream: ClientStream): void {
    this.#frames?.sendControl({ t: "cancel", s: stream.id });
  }

  finished(stream: ClientStream): void {
    if (this.#streams.get(stream.id) !== stream) return;
    this.#streams.delete(stream.id);
    if (this.#streams.size === 0) this.#lastActivityMs = performance.now();
  }

  async #connect(): Promise<void> {
    const { connectTimeoutMs } = this.#settings;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      this.#connectAbort.abort();
      this.#frames?.close(this.#connectTimeout());
    }, connectTimeoutMs);
    Deno.unrefTimer(timer);
    try {
      let conn: Deno.TcpConn;
      try {
        conn = await Deno.connect({
          hostname: this.#host,
          port: this.#port,
          signal: this.#connectAbort.signal,
        });
      } catch (err) {
        throw timedOut ? this.#connectTimeout() : this.#closeReason ?? this.#connectFailed(err);
      }
      if (this.#closeReason !== undefined) {
        conn.close();
        throw this.#closeReason;
      }
      conn.setNoDelay(true);
      this.#frames = new FrameConnection(conn, {
        peer: this.peer,
        maxFrameBytes: this.#settings.maxFrameBytes,
        maxQueuedFrames: this.#settings.maxQueuedFrames,
        maxQueuedBytes: this.#settings.maxQueuedBytes,
        logger: this.#settings.logger,
        onMessage: (m) => this.#onMessage(m),
        onClose: (reason) => this.#onFramesClosed(reason),
      });
      this.#frames.sendControl({ t: "hello", v: PROTOCOL_VERSION });
      await this.#helloReceived.promise;
    } catch (err) {
      const error = err instanceof DynamoError ? err : this.#connectFailed(err);
      this.close(error);
      throw error;
    } finally {
      clearTimeout(timer);
    }
    this.#connected = true;
    const tickMs = Math.max(1, Math.min(this.#settings.heartbeatMs, this.#settings.idleTimeoutMs));
    this.#ticker = setInterval(() => this.#tick(), tickMs);
    Deno.unrefTimer(this.#ticker!);
  }

  #connectFailed(err: unknown): DynamoError {
    const detail = err instanceof Deno.errors.ConnectionRefused
      ? "connection refused"
      : err instanceof Error
      ? err.message
      : String(err);
    return new DynamoError(
      "unavailable",
      "connect_failed",
      `Cannot connect to ${this.peer}: ${detail}`,
      { cause: err },
    );
  }

  #connectTimeout(): DynamoError {
    return new DynamoError(
      "unavailable",
      "connect_timeout",
      `Cannot connect to ${this.peer}: no answer within ${this.#settings.connectTimeoutMs} ms`,
    );
  }

  #onMessage(m: Message): void {
    if (m.t === "hello") {
      if (m.v !== PROTOCOL_VERSION) {
        throw new DynamoError(
          "unavailable",
          "protocol_mismatch",
          `Cannot use ${this.peer}: it speaks request-plane protocol version ${m.v}, this client ${PROTOCOL_VERSION}`,
        );
      }
      this.#helloReceived.resolve();
      return;
    }
    switch (m.t) {
      case "item":
        if (this.#known(m.s)?.push(m.data) === false) {
          throw violation(
            `server sent stream ${m.s} more items than its window of ${this.#settings.windowItems}`,
          );
        }
        return;
      case "end":
        this.#known(m.s)?.end();
        return;
      case "error":
        this.#known(m.s)?.fail(DynamoError.fromWire(m.error));
        return;
      case "cancel":
        this.#known(m.s)?.fail(
          new DynamoError(
            "cancelled",
            "cancelled_by_server",
            `Stream was cancelled by the worker at ${this.peer}`,
          ),
        );
        return;
      case "ping":
        this.#frames?.sendControl({ t: "pong" });
        return;
      case "pong":
        return;
      default:
        throw violation(`unexpected ${m.t} from a server`);
    }
  }

  /** The live stream `id`, or undefined if it already finished; throws for ids never opened. */
  #known(id: number): ClientStream | undefined {
    if (id >= this.#nextStreamId) {
      throw violation(`message for stream ${id}, which was never opened`);
    }
    return this.#streams.get(id);
  }

  #onFramesClosed(reason: DynamoError): void {
    this.#closeReason ??= reason;
    clearInterval(this.#ticker);
    // Before the hello, nothing reached the server: the caller may retry elsewhere.
    this.#helloReceived.reject(
      reason.reason === "connect_timeout" || reason.reason === "protocol_mismatch"
        ? reason
        : new DynamoError(
          "unavailable",
          "connect_failed",
          `Cannot connect to ${this.peer}: ${reason.message}`,
          {
            cause: reason,
          },
        ),
    );
    for (const stream of [...this.#streams.values()]) stream.fail(reason);
    this.#onClosed(this);
  }

  #tick(): void {
    const frames = this.#frames;
    if (frames === undefined || !frames.isOpen) return;
    const nowMs = performance.now();
    const { heartbeatMs, idleTimeoutMs } = this.#settings;
    if (this.#streams.size > 0) {
      const silentMs = nowMs - frames.lastReceivedMs;
      if (silentMs > DEAD_AFTER_HEARTBEATS * heartbeatMs) {
        this.close(
          new DynamoError(
            "unavailable",
            "disconnected",
            `Lost connection to ${this.peer}: nothing received for ${Math.round(silentMs)} ms`,
          ),
        );
      } else if (nowMs - this.#lastPingMs >= heartbeatMs) {
        this.#lastPingMs = nowMs;
        frames.sendControl({ t: "ping" });
      }
      return;
    }
    if (nowMs - this.#lastActivityMs >= idleTimeoutMs) {
      this.close(
        new DynamoError("unavailable", "idle_timeout", `Closed idle connection to ${this.peer}`),
      );
    }
  }
}

function violation(detail: string): DynamoError {
  return new DynamoError(
    "unavailable",
    "protocol_error",
    `Cannot use request-plane connection: ${detail}`,
  );
}
