import type { Bucket } from "../protocol/mod.ts";
import type { DiscoveryBackend, DiscoveryEvent } from "./discovery.ts";

/** How long a test waits for a discovery event before failing; generous for a loaded machine. */
export const EVENT_DEADLINE_MS = 5_000;

/**
 * Reads one watch for tests: every wait has a deadline, and a wait that times out leaves the
 * iterator in a usable state (its pending pull is kept for the next wait).
 */
export class WatchReader {
  readonly #controller = new AbortController();
  readonly #iterator: AsyncIterator<DiscoveryEvent>;
  #pending: Promise<IteratorResult<DiscoveryEvent>> | undefined;
  #done = false;

  constructor(backend: DiscoveryBackend, bucket: Bucket) {
    this.#iterator = backend.watch(bucket, this.#controller.signal)[Symbol.asyncIterator]();
  }

  /** The next event; throws if the watch ended or nothing came within the deadline. */
  async next(deadlineMs: number = EVENT_DEADLINE_MS): Promise<DiscoveryEvent> {
    const result = await this.#pull(deadlineMs);
    if (result === undefined) throw new Error(`No discovery event within ${deadlineMs} ms`);
    if (result.done === true) throw new Error("Discovery watch ended while an event was expected");
    return result.value;
  }

  /** Skips events until one satisfies `predicate`, all within one deadline. */
  async nextWhere(
    predicate: (event: DiscoveryEvent) => boolean,
    deadlineMs: number = EVENT_DEADLINE_MS,
  ): Promise<DiscoveryEvent> {
    const deadline = Date.now() + deadlineMs;
    for (;;) {
      const event = await this.next(Math.max(0, deadline - Date.now()));
      if (predicate(event)) return event;
    }
  }

  /** Resolves true when the watch ends within the deadline, false otherwise; skips events. */
  async ended(deadlineMs: number = EVENT_DEADLINE_MS): Promise<boolean> {
    const deadline = Date.now() + deadlineMs;
    while (!this.#done) {
      const result = await this.#pull(Math.max(0, deadline - Date.now()));
      if (result === undefined) return false;
    }
    return true;
  }

  /** Aborts the watch and waits for it to end, so the test leaks nothing. */
  async stop(deadlineMs: number = EVENT_DEADLINE_MS): Promise<void> {
    this.#controller.abort();
    if (!(await this.ended(deadlineMs))) {
      throw new Error(`Discovery watch did not end within ${deadlineMs} ms of its abort`);
    }
  }

  /** One pull, or undefined on timeout (the pull stays pending for the next call). */
  async #pull(deadlineMs: number): Promise<IteratorResult<DiscoveryEvent> | undefined> {
    if (this.#done) return { done: true, value: undefined };
    this.#pending ??= this.#iterator.next();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => {
        resolve(undefined);
      }, deadlineMs);
    });
    try {
      const result = await Promise.race([this.#pending, timeout]);
      if (result !== undefined) {
        this.#pending = undefined;
        if (result.done === true) this.#done = true;
      }
      return result;
    } finally {
      clearTimeout(timer);
    }
  }
}
