/** A double-ended queue on a growable ring buffer: O(1) at both ends. Private to mocker/. */
export class Deque<T> {
  #items: (T | undefined)[] = new Array(16);
  #head = 0;
  #length = 0;

  get length(): number {
    return this.#length;
  }

  pushBack(item: T): void {
    if (this.#length === this.#items.length) this.#grow();
    this.#items[(this.#head + this.#length) & (this.#items.length - 1)] = item;
    this.#length++;
  }

  pushFront(item: T): void {
    if (this.#length === this.#items.length) this.#grow();
    this.#head = (this.#head - 1) & (this.#items.length - 1);
    this.#items[this.#head] = item;
    this.#length++;
  }

  peekFront(): T | undefined {
    return this.#length === 0 ? undefined : this.#items[this.#head];
  }

  shift(): T | undefined {
    if (this.#length === 0) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head] = undefined;
    this.#head = (this.#head + 1) & (this.#items.length - 1);
    this.#length--;
    return item;
  }

  /** Removes the first occurrence of `item` (O(n)); returns whether it was there. */
  remove(item: T): boolean {
    const mask = this.#items.length - 1;
    for (let k = 0; k < this.#length; k++) {
      if (this.#items[(this.#head + k) & mask] !== item) continue;
      for (let j = k; j < this.#length - 1; j++) {
        this.#items[(this.#head + j) & mask] = this.#items[(this.#head + j + 1) & mask];
      }
      this.#items[(this.#head + this.#length - 1) & mask] = undefined;
      this.#length--;
      return true;
    }
    return false;
  }

  *[Symbol.iterator](): IterableIterator<T> {
    const mask = this.#items.length - 1;
    for (let k = 0; k < this.#length; k++) yield this.#items[(this.#head + k) & mask]!;
  }

  #grow(): void {
    const next = new Array<T | undefined>(this.#items.length * 2);
    for (let k = 0; k < this.#length; k++) {
      next[k] = this.#items[(this.#head + k) & (this.#items.length - 1)];
    }
    this.#items = next;
    this.#head = 0;
  }
}
