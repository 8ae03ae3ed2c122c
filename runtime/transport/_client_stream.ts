import { DynamoError } from "../errors/mod.ts";
import { type Deferred, deferred } from "../util/mod.ts";

/** How a client stream talks back to its connection. */
export interface ClientStreamLink {
  sendCredit(stream: ClientStream, n: number): void;
  sendCancel(stream: ClientStream): void;
  /** The stream reached a terminal state; the connection forgets it. */
  finished(stream: ClientStream): void;
}

/**
 * Client-side state of one stream: a buffer of at most `window` received items, and credit
 * returned to the server as the consumer takes them (in batches of half the window).
 */
export class ClientStream {
  readonly id: number;
  readonly window: number;
  #link: ClientStreamLink;
  #items: unknown[] = [];
  #consumedSinceCredit = 0;
  #ended = false;
  #error: DynamoError | undefined;
  #waiter: Deferred<void> | undefined;
  /** True once the open frame is queued; a cancel before that is sent after it. */
  #openQueued = false;
  #cancelPending = false;

  constructor(id: number, window: number, link: ClientStreamLink) {
    this.id = id;
    this.window = window;
    this.#link = link;
  }

  /** True once the stream has ended, failed or been cancelled (buffered items may remain). */
  get isTerminal(): boolean {
    return this.#ended || this.#error !== undefined;
  }

  get bufferedItems(): number {
    return this.#items.length;
  }

  /** Records that the open frame is queued, and sends a cancel that was waiting for it. */
  openQueued(): void {
    this.#openQueued = true;
    if (this.#cancelPending) this.#link.sendCancel(this);
  }

  /** An item arrived. Returns false if the server overran the credit it was given. */
  push(item: unknown): boolean {
    if (this.isTerminal) return true;
    if (this.#items.length >= this.window) return false;
    this.#items.push(item);
    this.#wake();
    return true;
  }

  end(): void {
    if (this.isTerminal) return;
    this.#ended = true;
    this.#link.finished(this);
    this.#wake();
  }

  /**
   * Fails the stream. Items that arrived before the failure are still delivered first, as
   * the server sent them; a local cancel drops them.
   */
  fail(error: DynamoError): void {
    if (this.isTerminal) return;
    this.#error = error;
    this.#link.finished(this);
    this.#wake();
  }

  /** Fails the stream locally and tells the server, unless it already finished. */
  cancel(error: DynamoError): void {
    if (this.isTerminal) return;
    if (this.#openQueued) this.#link.sendCancel(this);
    else this.#cancelPending = true;
    this.#items = [];
    this.fail(error);
  }

  /** The next item; `done` after `end`; throws the stream's error. */
  async next(): Promise<IteratorResult<unknown, undefined>> {
    for (;;) {
      if (this.#items.length > 0) {
        const value = this.#items.shift();
        this.#consumed();
        return { done: false, value };
      }
      if (this.#error !== undefined) throw this.#error;
      if (this.#ended) return { done: true, value: undefined };
      this.#waiter = deferred<void>();
      await this.#waiter.promise;
    }
  }

  #consumed(): void {
    if (this.isTerminal) return;
    this.#consumedSinceCredit++;
    if (this.#consumedSinceCredit >= Math.max(1, Math.floor(this.window / 2))) {
      this.#link.sendCredit(this, this.#consumedSinceCredit);
      this.#consumedSinceCredit = 0;
    }
  }

  #wake(): void {
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.resolve();
  }
}

/** The error a consumer's abort turns into: the signal's DynamoError reason, or `cancelled`. */
export function abortError(signal: AbortSignal): DynamoError {
  if (signal.reason instanceof DynamoError) return signal.reason;
  return new DynamoError("cancelled", "aborted", "Request was cancelled", { cause: signal.reason });
}
