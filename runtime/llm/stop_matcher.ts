/**
 * Finds stop strings in streamed text. Text that could be the start of a stop string is
 * held back until it is known not to be one, so output never contains any part of a stop
 * string, and it ends exactly before the first stop string (OpenAI semantics).
 */
export class StopMatcher {
  readonly #stops: readonly string[];
  readonly #holdChars: number;
  #pending = "";
  #stopped = false;

  constructor(stops: readonly string[]) {
    this.#stops = stops.filter((s) => s.length > 0);
    this.#holdChars = Math.max(0, ...this.#stops.map((s) => s.length - 1));
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /** Adds text; returns what may be emitted and whether a stop string was hit. */
  push(text: string): { text: string; stopped: boolean } {
    if (this.#stopped) return { text: "", stopped: true };
    if (this.#stops.length === 0) return { text, stopped: false };
    this.#pending += text;
    let cut = -1;
    for (const stop of this.#stops) {
      const at = this.#pending.indexOf(stop);
      if (at !== -1 && (cut === -1 || at < cut)) cut = at;
    }
    if (cut !== -1) {
      this.#stopped = true;
      const out = this.#pending.slice(0, cut);
      this.#pending = "";
      return { text: out, stopped: true };
    }
    const safe = this.#safePrefixLength();
    const out = this.#pending.slice(0, safe);
    this.#pending = this.#pending.slice(safe);
    return { text: out, stopped: false };
  }

  /** Releases held-back text at the end of the stream. */
  flush(): string {
    const out = this.#stopped ? "" : this.#pending;
    this.#pending = "";
    return out;
  }

  /** Length of the pending text that cannot be part of a stop string's beginning. */
  #safePrefixLength(): number {
    const text = this.#pending;
    const from = Math.max(0, text.length - this.#holdChars);
    for (let i = from; i < text.length; i++) {
      const tail = text.slice(i);
      if (this.#stops.some((s) => s.startsWith(tail))) return i;
    }
    return text.length;
  }
}
