/** A source of time. Cores take `nowMs` as an argument; shells read it from a Clock. */
export interface Clock {
  /** Milliseconds since the Unix epoch, with sub-millisecond precision where available. */
  nowMs(): number;
  /** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** Wall-clock time for live roles. */
export const systemClock: Clock = {
  nowMs: () => performance.timeOrigin + performance.now(),
  sleep: abortableSleep,
};

/** Resolves after `ms`; rejects with the abort reason if `signal` aborts first. */
export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, Math.max(0, ms));
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** A clock that only moves when a test advances it; sleepers wake in deadline order. */
export class ManualClock implements Clock {
  #nowMs: number;
  #sleepers: { wakeAtMs: number; resolve: () => void }[] = [];

  constructor(startMs = 0) {
    this.#nowMs = startMs;
  }

  nowMs(): number {
    return this.#nowMs;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const entry = { wakeAtMs: this.#nowMs + Math.max(0, ms), resolve };
      this.#sleepers.push(entry);
      signal?.addEventListener("abort", () => {
        this.#sleepers = this.#sleepers.filter((s) => s !== entry);
        reject(signal.reason);
      }, { once: true });
    });
  }

  /** Moves time forward by `ms`, waking every sleeper whose deadline has passed. */
  async advance(ms: number): Promise<void> {
    const target = this.#nowMs + ms;
    for (;;) {
      this.#sleepers.sort((a, b) => a.wakeAtMs - b.wakeAtMs);
      const next = this.#sleepers[0];
      if (next === undefined || next.wakeAtMs > target) break;
      this.#sleepers.shift();
      this.#nowMs = next.wakeAtMs;
      next.resolve();
      // Let the woken task run (and possibly schedule another sleep) before going on.
      await new Promise((r) => setTimeout(r, 0));
    }
    this.#nowMs = target;
  }

  /** Number of pending sleepers; lets a test wait until a task has gone to sleep. */
  get pendingSleepers(): number {
    return this.#sleepers.length;
  }
}
