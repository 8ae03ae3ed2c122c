import { DynamoError } from "../errors/mod.ts";

/** A promise with its resolve and reject exposed. */
export interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(reason: unknown): void;
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * A bounded single-consumer queue that is also an async iterable. `push` fails with an
 * `overloaded` error when the queue is full, so a producer can never make it grow without
 * bound; `close` ends iteration once the buffered items are consumed, `fail` ends it with an
 * error.
 */
export class AsyncQueue<T> implements AsyncIterable<T> {
  readonly capacity: number;
  #items: T[] = [];
  #waiter: Deferred<void> | undefined;
  #closed = false;
  #error: unknown = undefined;

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  get size(): number {
    return this.#items.length;
  }

  get closed(): boolean {
    return this.#closed;
  }

  push(item: T): void {
    if (this.#closed) return;
    if (this.#items.length >= this.capacity) {
      throw new DynamoError(
        "overloaded",
        "queue_full",
        `Cannot queue item: queue is full at ${this.capacity} items`,
      );
    }
    this.#items.push(item);
    this.#wake();
  }

  close(): void {
    this.#closed = true;
    this.#wake();
  }

  fail(error: unknown): void {
    if (this.#closed) return;
    this.#error = error;
    this.#closed = true;
    this.#wake();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      const item = this.#items.shift();
      if (item !== undefined) {
        yield item;
        continue;
      }
      if (this.#closed) {
        if (this.#error !== undefined) throw this.#error;
        return;
      }
      this.#waiter = deferred<void>();
      await this.#waiter.promise;
    }
  }

  #wake(): void {
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.resolve();
  }
}

/** An AbortSignal that aborts with a `timeout` DynamoError after `ms`. */
export function timeoutSignal(ms: number, what: string): AbortSignal {
  const controller = new AbortController();
  const timer = setTimeout(
    () =>
      controller.abort(new DynamoError("timeout", "timed_out", `${what} timed out after ${ms} ms`)),
    ms,
  );
  Deno.unrefTimer(timer);
  return controller.signal;
}
