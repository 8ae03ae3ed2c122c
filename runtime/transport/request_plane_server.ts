import { DynamoError } from "../errors/mod.ts";
import { Logger } from "../observability/mod.ts";
import { deferred } from "../util/mod.ts";
import { formatPeer } from "./_frame_connection.ts";
import {
  ServerConnection,
  type ServerConnectionHost,
  type StreamHandler,
} from "./_server_connection.ts";
import { requirePositiveInt } from "./_options.ts";
import { DEFAULT_MAX_FRAME_BYTES, DEFAULT_MAX_QUEUED_BYTES } from "./frame_codec.ts";

export type { StreamContext, StreamHandler } from "./_server_connection.ts";

/** Options for `RequestPlaneServer.listen`. Every limit has a default. */
export interface RequestPlaneServerOptions {
  /** Address to bind (`127.0.0.1`, `0.0.0.0`, …). */
  readonly host: string;
  /** Port to bind; 0 picks a free one. */
  readonly port: number;
  /** Largest frame body accepted or sent (DYN_TCP_MAX_MESSAGE_SIZE); default 32 MiB. */
  readonly maxFrameBytes?: number;
  /** Connections served at once; more are closed on accept. Default 1024. */
  readonly maxConnections?: number;
  /** Streams open at once on one connection; more are refused `overloaded`. Default 4096. */
  readonly maxStreamsPerConnection?: number;
  /** Largest window a client may grant a stream. Default 4096 items. */
  readonly maxWindowItems?: number;
  /** Frames queued per connection before item sends wait for the socket. Default 1024. */
  readonly maxQueuedFrames?: number;
  /** Bytes queued per connection before item sends wait for the socket. Default 64 MiB. */
  readonly maxQueuedBytes?: number;
  /** A client must send hello within this. Default 3000 ms. */
  readonly handshakeTimeoutMs?: number;
  /** A connection with no streams and no traffic for this long is closed. Default 120 s. */
  readonly idleTimeoutMs?: number;
  /**
   * A connection with open streams and nothing received for this long is closed and its
   * streams cancelled (the client pings every heartbeatMs). Default 15 s.
   */
  readonly peerSilenceTimeoutMs?: number;
  /** How long a cancelled handler gets to return, and queued frames to flush, on close. Default 1000 ms. */
  readonly closeGraceMs?: number;
  readonly logger?: Logger;
}

/** Options for `RequestPlaneServer.close`. */
export interface CloseOptions {
  /** How long in-flight streams may run to completion before they are cancelled. Default 0. */
  readonly drainMs?: number;
}

export const DEFAULT_SERVER_IDLE_TIMEOUT_MS = 120_000;
export const DEFAULT_PEER_SILENCE_TIMEOUT_MS = 15_000;

/**
 * The worker side of the request plane: accepts TCP connections, and for every `open` runs
 * the registered handler, sending its items as the client grants credit.
 */
export class RequestPlaneServer {
  readonly host: string;
  readonly port: number;
  #listener: Deno.TcpListener;
  #handlers = new Map<string, StreamHandler>();
  #connections = new Set<ServerConnection>();
  #maxConnections: number;
  #connectionHost: ServerConnectionHost;
  #logger: Logger;
  #draining = false;
  #acceptLoop: Promise<void>;
  #closing: Promise<void> | undefined;
  #onStreamsChanged: (() => void) | undefined;

  private constructor(listener: Deno.TcpListener, options: RequestPlaneServerOptions) {
    this.#listener = listener;
    this.host = listener.addr.hostname;
    this.port = listener.addr.port;
    this.#logger = options.logger ?? new Logger("transport.request_plane");
    const limits = resolveLimits(options);
    this.#maxConnections = limits.maxConnections;
    this.#connectionHost = {
      ...limits,
      logger: this.#logger,
      refusal: () => this.#draining ? drainingError() : undefined,
      handlerFor: (endpoint) => this.#handlers.get(endpoint),
      streamsChanged: () => this.#onStreamsChanged?.(),
      // Kept until its loops end, so close() also waits for connections that closed themselves.
      connectionClosed: (c) => void c.frames.done.then(() => this.#connections.delete(c)),
    };
    this.#acceptLoop = this.#accept();
  }

  /** Binds `host:port` and starts accepting connections. */
  static listen(options: RequestPlaneServerOptions): Promise<RequestPlaneServer> {
    let listener: Deno.TcpListener;
    try {
      listener = Deno.listen({ hostname: options.host, port: options.port, transport: "tcp" });
    } catch (err) {
      const detail = err instanceof Deno.errors.AddrInUse
        ? "address in use"
        : err instanceof Error
        ? err.message
        : String(err);
      return Promise.reject(
        new DynamoError(
          "unavailable",
          "listen_failed",
          `Cannot listen on ${formatPeer(options.host, options.port)}: ${detail}`,
          {
            cause: err,
          },
        ),
      );
    }
    try {
      return Promise.resolve(new RequestPlaneServer(listener, options));
    } catch (err) {
      listener.close();
      return Promise.reject(err);
    }
  }

  /** Serves `endpoint` with `handler`. Each endpoint name may be registered once. */
  register(endpoint: string, handler: StreamHandler): void {
    if (this.#handlers.has(endpoint)) {
      throw new DynamoError(
        "internal",
        "duplicate_endpoint",
        `Cannot register endpoint "${endpoint}": already registered`,
      );
    }
    this.#handlers.set(endpoint, handler);
  }

  /** Streams currently running on all connections. */
  get inflightStreams(): number {
    let n = 0;
    for (const c of this.#connections) n += c.streams.size;
    return n;
  }

  /** Client connections currently open. */
  get connectionCount(): number {
    let n = 0;
    for (const c of this.#connections) if (c.frames.isOpen) n++;
    return n;
  }

  /**
   * Stops accepting connections and streams (an `open` now gets `unavailable`/`draining`),
   * lets in-flight streams finish for up to `drainMs`, cancels the rest (their handlers'
   * signals abort and the clients get `cancel`), then closes every connection.
   */
  close(options: CloseOptions = {}): Promise<void> {
    this.#closing ??= this.#shutdown(options.drainMs ?? 0);
    return this.#closing;
  }

  async #shutdown(drainMs: number): Promise<void> {
    this.#draining = true;
    try {
      this.#listener.close();
    } catch {
      // Already closed.
    }
    await this.#acceptLoop;
    if (drainMs > 0 && this.inflightStreams > 0) await this.#drain(drainMs);
    const connections = [...this.#connections];
    const cancel = new DynamoError(
      "cancelled",
      "server_shutdown",
      "Stream was cancelled: the worker is shutting down",
    );
    for (const c of connections) c.cancelAll(cancel);
    await Promise.all(connections.map((c) => c.pumpsDone()));
    const closed = new DynamoError("unavailable", "server_closed", "Request plane server closed");
    await Promise.all(
      connections.map((c) => c.frames.closeAfterFlush(closed, this.#connectionHost.closeGraceMs)),
    );
  }

  async #drain(drainMs: number): Promise<void> {
    const drained = deferred<void>();
    this.#onStreamsChanged = () => {
      if (this.inflightStreams === 0) drained.resolve();
    };
    const timer = setTimeout(() => drained.resolve(), drainMs);
    Deno.unrefTimer(timer);
    await drained.promise;
    clearTimeout(timer);
    this.#onStreamsChanged = undefined;
    if (this.inflightStreams > 0) {
      this.#logger.warn("Cancelling streams still running after the drain period", {
        streams: this.inflightStreams,
        drainMs,
      });
    }
  }

  async #accept(): Promise<void> {
    for (;;) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#listener.accept();
      } catch (err) {
        if (this.#draining || err instanceof Deno.errors.BadResource) return;
        this.#logger.error("Cannot accept connection", { err });
        continue;
      }
      const peer = formatPeer(conn.remoteAddr.hostname, conn.remoteAddr.port);
      if (this.#draining || this.#connections.size >= this.#maxConnections) {
        this.#logger.warn("Refusing connection", {
          peer,
          connections: this.#connections.size,
          draining: this.#draining,
        });
        conn.close();
        continue;
      }
      try {
        conn.setNoDelay(true);
      } catch {
        // The peer may already be gone; the read loop will notice.
      }
      this.#connections.add(new ServerConnection(conn, peer, this.#connectionHost));
    }
  }
}

function drainingError(): DynamoError {
  return new DynamoError(
    "unavailable",
    "draining",
    "Cannot open stream: the worker is shutting down",
  );
}

/** Every limit of the server, defaulted and checked. */
function resolveLimits(options: RequestPlaneServerOptions): ServerLimits {
  const defaults: ServerLimits = {
    maxFrameBytes: DEFAULT_MAX_FRAME_BYTES,
    maxConnections: 1024,
    maxStreamsPerConnection: 4096,
    maxWindowItems: 4096,
    maxQueuedFrames: 1024,
    maxQueuedBytes: DEFAULT_MAX_QUEUED_BYTES,
    handshakeTimeoutMs: 3000,
    idleTimeoutMs: DEFAULT_SERVER_IDLE_TIMEOUT_MS,
    peerSilenceTimeoutMs: DEFAULT_PEER_SILENCE_TIMEOUT_MS,
    closeGraceMs: 1000,
  };
  const limits = { ...defaults };
  for (const name of Object.keys(defaults) as (keyof ServerLimits)[]) {
    limits[name] = requirePositiveInt(
      "Cannot start request plane server",
      name,
      options[name] ?? defaults[name],
    );
  }
  return limits;
}

/** The numeric options, all limits and timeouts. */
type ServerLimits = {
  -readonly [K in Exclude<keyof RequestPlaneServerOptions, "host" | "port" | "logger">]-?: number;
};
