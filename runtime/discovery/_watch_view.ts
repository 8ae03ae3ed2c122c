import { type Deferred, deferred } from "../util/mod.ts";
import type { DiscoveryEvent } from "./discovery.ts";
import type { StoredEntry } from "./_checks.ts";

/**
 * What one watcher has told its consumer, diffed on demand against the source's current state.
 *
 * Sources do not push events into a queue; they mark ids dirty, and the consumer, when it
 * pulls, compares the source's current entry with the last one it emitted. This is
 * level-triggered on purpose: a slow consumer costs no memory beyond one entry per live id
 * (a queue would grow or drop events), and a burst of changes to one id collapses to its
 * final state, which is all discovery promises.
 *
 * Bounds: `emitted` only ever holds ids the source held, and sources mark an id dirty only
 * when they hold it or `wasEmitted(id)`, so both sets stay within the source's own limit.
 */
export class WatchView {
  #lookup: (id: string) => StoredEntry | undefined;
  #emitted = new Map<string, { readonly key: string; readonly text: string }>();
  #dirty = new Set<string>();
  #wake: Deferred<void> | undefined;
  #ended = false;

  /** `lookup(id)` returns the source's current entry for `id`, or undefined when it has none. */
  constructor(lookup: (id: string) => StoredEntry | undefined) {
    this.#lookup = lookup;
  }

  /** Whether the consumer currently believes `id` exists. */
  wasEmitted(id: string): boolean {
    return this.#emitted.has(id);
  }

  /** Notes that `id` may differ from what was emitted; the consumer re-checks it when it pulls. */
  markDirty(id: string): void {
    if (this.#ended) return;
    this.#dirty.add(id);
    this.#wakeUp();
  }

  /** Ends the event stream at the consumer's next pull; pending changes are dropped. */
  end(): void {
    this.#ended = true;
    this.#wakeUp();
  }

  /** The diffs, in the order ids became dirty, until `end()`. */
  async *events(): AsyncGenerator<DiscoveryEvent, void, undefined> {
    for (;;) {
      if (this.#ended) return;
      const id = this.#takeDirty();
      if (id === undefined) {
        this.#wake = deferred<void>();
        await this.#wake.promise;
        continue;
      }
      const event = this.#diff(id);
      if (event !== undefined) yield event;
    }
  }

  #takeDirty(): string | undefined {
    for (const id of this.#dirty) {
      this.#dirty.delete(id);
      return id;
    }
    return undefined;
  }

  #diff(id: string): DiscoveryEvent | undefined {
    const current = this.#lookup(id);
    const previous = this.#emitted.get(id);
    if (current !== undefined) {
      // Same text means only the lease moved (or a rewrite with equal bytes): nothing to say.
      if (previous !== undefined && previous.text === current.text) return undefined;
      this.#emitted.set(id, { key: current.key, text: current.text });
      return { kind: "added", key: current.key, value: current.value };
    }
    if (previous === undefined) return undefined;
    this.#emitted.delete(id);
    return { kind: "removed", key: previous.key };
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.resolve();
  }
}
