/** A bounded FIFO that overwrites its oldest item when full; O(1) push and index. */
export class Ring<T> {
  readonly capacity: number;
  readonly #items: (T | undefined)[];
  #start = 0;
  #length = 0;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(
        `Cannot create ring: capacity must be a positive integer, got ${capacity}`,
      );
    }
    this.capacity = capacity;
    this.#items = new Array(capacity);
  }

  get length(): number {
    return this.#length;
  }

  /** Appends `item`; returns the item it pushed out, if the ring was full. */
  push(item: T): T | undefined {
    if (this.#length < this.capacity) {
      this.#items[(this.#start + this.#length++) % this.capacity] = item;
      return undefined;
    }
    const evicted = this.#items[this.#start];
    this.#items[this.#start] = item;
    this.#start = (this.#start + 1) % this.capacity;
    return evicted;
  }

  /** The item `index` places after the oldest (0 = oldest), or undefined when out of range. */
  at(index: number): T | undefined {
    if (index < 0 || index >= this.#length) return undefined;
    return this.#items[(this.#start + index) % this.capacity];
  }

  clear(): void {
    this.#items.fill(undefined);
    this.#start = 0;
    this.#length = 0;
  }

  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = 0; i < this.#length; i++) yield this.#items[(this.#start + i) % this.capacity]!;
  }
}
