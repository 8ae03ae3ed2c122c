import { DynamoError } from "../errors/mod.ts";

/** Something that happens at a virtual time. */
export interface TimedEvent {
  /** Virtual time in milliseconds. */
  readonly timeMs: number;
}

/** Most events pending at once before the queue refuses more (a runaway-simulation guard). */
export const MAX_PENDING_EVENTS = 16_000_000;

/**
 * A min-heap of events ordered by time, then by insertion order, so events at the same
 * instant come out in the order they were pushed and a simulation is reproducible.
 */
export class EventQueue<T extends TimedEvent> {
  #items: T[] = [];
  #seqs: number[] = [];
  #nextSeq = 0;
  readonly #limit: number;

  constructor(options: { maxPendingEvents?: number } = {}) {
    this.#limit = options.maxPendingEvents ?? MAX_PENDING_EVENTS;
  }

  get size(): number {
    return this.#items.length;
  }

  /** The earliest event, without removing it. */
  peek(): T | undefined {
    return this.#items[0];
  }

  push(event: T): void {
    if (!Number.isFinite(event.timeMs)) {
      throw new RangeError(`Cannot schedule an event at time ${event.timeMs}`);
    }
    if (this.#items.length >= this.#limit) {
      throw new DynamoError(
        "internal",
        "sim_event_queue_full",
        `Cannot schedule an event: ${this.#items.length} are pending (limit ${this.#limit})`,
      );
    }
    const items = this.#items;
    const seqs = this.#seqs;
    const seq = this.#nextSeq++;
    let i = items.length;
    items.push(event);
    seqs.push(seq);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!earlier(event.timeMs, seq, items[parent]!.timeMs, seqs[parent]!)) break;
      items[i] = items[parent]!;
      seqs[i] = seqs[parent]!;
      i = parent;
    }
    items[i] = event;
    seqs[i] = seq;
  }

  /** Removes and returns the earliest event. */
  pop(): T | undefined {
    const items = this.#items;
    const seqs = this.#seqs;
    const top = items[0];
    if (top === undefined) return undefined;
    const last = items.pop()!;
    const lastSeq = seqs.pop()!;
    const n = items.length;
    if (n === 0) return top;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      const child =
        right < n && earlier(items[right]!.timeMs, seqs[right]!, items[left]!.timeMs, seqs[left]!)
          ? right
          : left;
      if (!earlier(items[child]!.timeMs, seqs[child]!, last.timeMs, lastSeq)) break;
      items[i] = items[child]!;
      seqs[i] = seqs[child]!;
      i = child;
    }
    items[i] = last;
    seqs[i] = lastSeq;
    return top;
  }
}

function earlier(timeA: number, seqA: number, timeB: number, seqB: number): boolean {
  return timeA < timeB || (timeA === timeB && seqA < seqB);
}
