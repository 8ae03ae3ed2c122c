/**
 * Reading ZeroMQ sockets without a pending `receive()`. In Deno a pending zeromq.js receive
 * waits on `uv_poll`, and Deno's `uv_poll_start` stops watching after its first callback
 * (denoland/deno#36317): after a connect or disconnect such a receive never wakes. So, as
 * the transport's EventSubscriber does, sockets here use ZMQ_RCVTIMEO 0, check
 * `readable` (ZMQ_EVENTS, far cheaper than a receive failing with EAGAIN) and, when nothing
 * is queued, look again 1 ms later, doubling the pause up to `idlePollMs` while idle.
 */
import type * as zmq from "zeromq";

/** A socket the reader can poll (every zeromq.js readable socket). */
export type PollableSocket = zmq.Readable & {
  readonly readable: boolean;
  readonly closed: boolean;
};

/** Non-blocking reads with an idle backoff; one reader per socket, one read at a time. */
export class PollingReader {
  readonly #socket: PollableSocket;
  readonly #idlePollMs: number;
  #backoffMs = 1;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #wake: (() => void) | undefined;

  constructor(socket: PollableSocket, idlePollMs: number) {
    this.#socket = socket;
    this.#idlePollMs = idlePollMs;
  }

  /**
   * The next message, or undefined once the socket is closed, `signal` is aborted, or
   * `deadlineMs` (a `performance.now()` time) has passed. Errors other than EAGAIN are thrown.
   */
  async next(options: { signal?: AbortSignal; deadlineMs?: number } = {}): Promise<
    Uint8Array[] | undefined
  > {
    const { signal, deadlineMs } = options;
    for (;;) {
      if (this.#socket.closed || signal?.aborted) return undefined;
      if (this.#socket.readable) {
        try {
          const frames = await this.#socket.receive();
          this.#backoffMs = 1;
          return frames;
        } catch (err) {
          if (this.#socket.closed) return undefined;
          if ((err as { code?: string }).code !== "EAGAIN") throw err;
        }
      }
      const now = performance.now();
      if (deadlineMs !== undefined && now >= deadlineMs) return undefined;
      const pauseMs = deadlineMs === undefined
        ? this.#backoffMs
        : Math.min(this.#backoffMs, deadlineMs - now);
      this.#backoffMs = Math.min(this.#backoffMs * 2, this.#idlePollMs);
      await this.#pause(pauseMs, signal, deadlineMs === undefined);
    }
  }

  /** Ends a pending pause at once (call after closing the socket). */
  wake(): void {
    clearTimeout(this.#timer);
    this.#wake?.();
  }

  #pause(ms: number, signal: AbortSignal | undefined, unref: boolean): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(this.#timer);
        signal?.removeEventListener("abort", done);
        this.#wake = undefined;
        resolve();
      };
      this.#wake = done;
      this.#timer = setTimeout(done, ms);
      // An endless idle read must not keep the process alive; a bounded wait (a caller
      // awaiting an answer) must, or the event loop could end under it.
      if (unref) Deno.unrefTimer(this.#timer);
      signal?.addEventListener("abort", done, { once: true });
    });
  }
}

/** After an unexpected socket error, a loop waits this long so a persistent one cannot spin. */
const ERROR_PAUSE_MS = 100;

/** Waits `ERROR_PAUSE_MS` (a bounded wait: the timer is kept referenced). */
export function pauseAfterError(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ERROR_PAUSE_MS));
}
