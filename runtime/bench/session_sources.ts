import { type SessionSpec, type SyntheticSpec, syntheticWorkload } from "../workload/mod.ts";
import type { SessionSource } from "./load_driver.ts";

/** Most sessions a synthetic source generates in one run (a --duration run stops there). */
export const MAX_SYNTHETIC_SESSIONS = 1_000_000;

/** Sessions from a fixed list, in order. */
export class ListSource implements SessionSource {
  readonly #sessions: readonly SessionSpec[];
  #next = 0;

  constructor(sessions: readonly SessionSpec[]) {
    this.#sessions = sessions;
  }

  next(): SessionSpec | undefined {
    return this.#sessions[this.#next++];
  }
}

/**
 * An endless (up to MAX_SYNTHETIC_SESSIONS) stream of synthetic sessions. It generates
 * `initial` sessions with `syntheticWorkload`, and when they run out, regenerates with twice
 * as many and continues where it stopped: the generator draws each session after the ones
 * before it from one seeded stream, so a larger workload starts with the smaller one and
 * the sessions, shared prefixes and arrival times continue exactly.
 */
export class SyntheticSource implements SessionSource {
  readonly #spec: Omit<SyntheticSpec, "sessions">;
  readonly #description: string;
  #generated = 0;
  #batch: readonly SessionSpec[] = [];
  #pos = 0;
  readonly #initial: number;

  constructor(
    spec: Omit<SyntheticSpec, "sessions">,
    options: { initial: number; description: string },
  ) {
    this.#spec = spec;
    this.#initial = Math.max(1, Math.min(options.initial, MAX_SYNTHETIC_SESSIONS));
    this.#description = options.description;
  }

  next(): SessionSpec | undefined {
    if (this.#pos >= this.#batch.length) {
      if (this.#generated >= MAX_SYNTHETIC_SESSIONS) return undefined;
      const total = Math.min(
        MAX_SYNTHETIC_SESSIONS,
        this.#generated === 0 ? this.#initial : this.#generated * 2,
      );
      const w = syntheticWorkload({ ...this.#spec, sessions: total }, this.#description);
      this.#batch = w.sessions.slice(this.#generated);
      this.#generated = total;
      this.#pos = 0;
    }
    return this.#batch[this.#pos++];
  }
}
