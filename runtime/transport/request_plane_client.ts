import { DynamoError } from "../errors/mod.ts";
import { Logger } from "../observability/mod.ts";
import { ClientConnection, type ClientConnectionSettings } from "./_client_connection.ts";
import { abortError } from "./_client_stream.ts";
import { formatPeer } from "./_frame_connection.ts";
import { requirePositiveInt } from "./_options.ts";
import { DEFAULT_MAX_FRAME_BYTES, DEFAULT_MAX_QUEUED_BYTES } from "./frame_codec.ts";

/** Options for `RequestPlaneClient`. Every limit has a default. */
export interface RequestPlaneClientOptions {
  /** TCP connect plus the server's hello must finish within this (DYN_TCP_CONNECT_TIMEOUT). Default 3000 ms. */
  readonly connectTimeoutMs?: number;
  /** A pooled connection with no open streams for this long is closed. Default 60 s. */
  readonly idleTimeoutMs?: number;
  /**
   * While streams are open, a ping goes out this often, and the connection fails after
   * three heartbeats without receiving anything. Default 5000 ms.
   */
  readonly heartbeatMs?: number;
  /** Largest frame body sent or accepted (DYN_TCP_MAX_MESSAGE_SIZE). Default 32 MiB. */
  readonly maxFrameBytes?: number;
  /** Items the server may send ahead of the consumer, per stream. Default 64. */
  readonly windowItems?: number;
  /** Addresses with a pooled connection at once. Default 1024. */
  readonly maxConnections?: number;
  /** Streams open at once on one connection. Default 4096. */
  readonly maxStreamsPerConnection?: number;
  /** Frames queued per connection before opens wait for the socket. Default 1024. */
  readonly maxQueuedFrames?: number;
  /** Bytes queued per connection before opens wait for the socket. Default 64 MiB. */
  readonly maxQueuedBytes?: number;
  readonly logger?: Logger;
}

/** Options for one call. */
export interface CallOptions {
  /** Aborting cancels the stream on the server too. */
  readonly signal?: AbortSignal;
  readonly headers?: Readonly<Record<string, string>>;
}

/** Where a call goes. */
export interface RequestPlaneTarget {
  readonly host: string;
  readonly port: number;
}

export const DEFAULT_CONNECT_TIMEOUT_MS = 3000;
export const DEFAULT_CLIENT_IDLE_TIMEOUT_MS = 60_000;
export const DEFAULT_HEARTBEAT_MS = 5000;
export const DEFAULT_WINDOW_ITEMS = 64;

/**
 * The frontend side of the request plane: one multiplexed connection per server address,
 * made on first use and remade on the next use after it fails. Errors are DynamoErrors:
 * `unavailable`/`connect_failed` or `connect_timeout` when the server was never reached
 * (safe to retry elsewhere), `unavailable`/`disconnected` when the connection was lost
 * mid-stream, the server's own class and reason for handler errors, `cancelled` when the
 * server cancels.
 */
export class RequestPlaneClient {
  #settings: ClientConnectionSettings;
  #maxConnections: number;
  #pool = new Map<string, ClientConnection>();
  /** Every connection whose socket may still be open (pooled or closing); close() waits for them. */
  #unfinished = new Set<ClientConnection>();
  #closed = false;

  constructor(options: RequestPlaneClientOptions = {}) {
    const limits = resolveLimits(options);
    this.#maxConnections = limits.maxConnections;
    this.#settings = { ...limits, logger: options.logger ?? new Logger("transport.request_plane") };
  }

  /** Pooled connections (connecting or open). */
  get connectionCount(): number {
    return this.#pool.size;
  }

  /**
   * Calls `endpoint` on the server at `target` and streams its response items. Breaking out
   * of the loop, or aborting `signal`, cancels the stream on the server.
   */
  async *call(
    target: RequestPlaneTarget,
    endpoint: string,
    payload: unknown,
    options: CallOptions = {},
  ): AsyncGenerator<unknown, void, undefined> {
    const { signal } = options;
    if (signal?.aborted) throw abortError(signal);
    const connection = await this.#acquire(target, signal);
    const stream = await connection.open(endpoint, payload, { ...options.headers });
    const onAbort = (): void => stream.cancel(abortError(signal!));
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      if (signal?.aborted) onAbort();
      for (;;) {
        const next = await stream.next();
        if (next.done === true) return;
        yield next.value;
      }
    } finally {
      signal?.removeEventListener("abort", onAbort);
      stream.cancel(
        new DynamoError("cancelled", "consumer_stopped", "Stream was cancelled by its consumer"),
      );
    }
  }

  /** Closes every connection; streams still open fail with `cancelled`/`client_closed`. */
  async close(): Promise<void> {
    this.#closed = true;
    const reason = new DynamoError("cancelled", "client_closed", "Request plane client was closed");
    for (const c of [...this.#pool.values()]) c.close(reason);
    await Promise.all([...this.#unfinished].map((c) => c.done));
  }

  async #acquire(
    target: RequestPlaneTarget,
    signal: AbortSignal | undefined,
  ): Promise<ClientConnection> {
    if (this.#closed) {
      throw new DynamoError(
        "unavailable",
        "client_closed",
        `Cannot call ${formatPeer(target.host, target.port)}: the client is closed`,
      );
    }
    const key = formatPeer(target.host, target.port);
    let connection = this.#pool.get(key);
    if (connection === undefined || !connection.isOpen) {
      this.#makeRoom(key);
      connection = new ClientConnection(
        target.host,
        target.port,
        this.#settings,
        (c) => this.#forget(key, c),
      );
      this.#pool.set(key, connection);
      this.#unfinished.add(connection);
      void connection.done.then(() => this.#unfinished.delete(connection!));
    }
    await waitUnlessAborted(connection.ready, signal);
    return connection;
  }

  /** Evicts an idle connection when the pool is full, or refuses. */
  #makeRoom(key: string): void {
    if (this.#pool.size < this.#maxConnections) return;
    for (const c of this.#pool.values()) {
      if (c.isIdle) {
        c.close(
          new DynamoError(
            "unavailable",
            "evicted",
            `Closed idle connection to ${c.peer} to make room`,
          ),
        );
        if (this.#pool.size < this.#maxConnections) return;
      }
    }
    throw new DynamoError(
      "overloaded",
      "too_many_connections",
      `Cannot connect to ${key}: ${this.#pool.size} connections already open (limit ${this.#maxConnections})`,
    );
  }

  #forget(key: string, connection: ClientConnection): void {
    if (this.#pool.get(key) === connection) this.#pool.delete(key);
  }
}

/** Waits for `promise`, or throws the abort error as soon as `signal` aborts. */
function waitUnlessAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.reject(abortError(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(abortError(signal));
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** The numeric options, all limits and timeouts. */
type ClientLimits = {
  -readonly [K in Exclude<keyof RequestPlaneClientOptions, "logger">]-?: number;
};

/** Every limit of the client, defaulted and checked. */
function resolveLimits(options: RequestPlaneClientOptions): ClientLimits {
  const defaults: ClientLimits = {
    connectTimeoutMs: DEFAULT_CONNECT_TIMEOUT_MS,
    idleTimeoutMs: DEFAULT_CLIENT_IDLE_TIMEOUT_MS,
    heartbeatMs: DEFAULT_HEARTBEAT_MS,
    maxFrameBytes: DEFAULT_MAX_FRAME_BYTES,
    windowItems: DEFAULT_WINDOW_ITEMS,
    maxConnections: 1024,
    maxStreamsPerConnection: 4096,
    maxQueuedFrames: 1024,
    maxQueuedBytes: DEFAULT_MAX_QUEUED_BYTES,
  };
  const limits = { ...defaults };
  for (const name of Object.keys(defaults) as (keyof ClientLimits)[]) {
    limits[name] = requirePositiveInt(
      "Cannot create request plane client",
      name,
      options[name] ?? defaults[name],
    );
  }
  return limits;
}
