/**
 * An open-addressing hash table from a u64 key, given as its two u32 halves, to a
 * non-negative int32 value. Linear probing with backward-shift deletion (no tombstones, so
 * churn does not degrade it); slots are `[hi, lo, value]` triples in one Int32Array, with
 * `value = -1` marking an empty slot. Used for the per-worker `block_hash → node` lookup and
 * for the approximate-mode timers, where a JavaScript Map keyed by bigint would cost
 * hundreds of nanoseconds per access.
 */

const EMPTY = -1;
const STRIDE = 3;
const MIN_CAPACITY_SLOTS = 8;
/** Grow when more than 3/4 of the slots are used. */
const MAX_LOAD_NUMERATOR = 3;
const MAX_LOAD_DENOMINATOR = 4;

/** The home slot of a key: a multiply-xorshift mix, so small test keys spread too. */
export function mixU64(hi: number, lo: number): number {
  let h = Math.imul(lo ^ Math.imul(hi, 0x85ebca6b), 0x9e3779b1);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  return h ^ (h >>> 12);
}

/** A `u64 → int32 ≥ 0` hash map over one typed array. Keys are `(hi, lo)` u32 halves. */
export class U64Table {
  #slots: Int32Array;
  #mask: number;
  #size = 0;

  constructor(initialCapacitySlots: number = MIN_CAPACITY_SLOTS) {
    let capacity = MIN_CAPACITY_SLOTS;
    while (capacity < initialCapacitySlots) capacity *= 2;
    this.#slots = new Int32Array(capacity * STRIDE).fill(EMPTY);
    this.#mask = capacity - 1;
  }

  /** Entries in the table. */
  get size(): number {
    return this.#size;
  }

  /** Bytes held by the slot array. */
  get byteLength(): number {
    return this.#slots.byteLength;
  }

  /** The value stored for `(hi, lo)`, or -1. */
  get(hi: number, lo: number): number {
    const slots = this.#slots;
    const mask = this.#mask;
    const h = hi | 0;
    const l = lo | 0;
    let i = mixU64(h, l) & mask;
    for (;;) {
      const base = i * STRIDE;
      const value = slots[base + 2]!;
      if (value === EMPTY) return EMPTY;
      if (slots[base + 1] === l && slots[base] === h) return value;
      i = (i + 1) & mask;
    }
  }

  /**
   * One probe for a read-then-write: the slot holding `(hi, lo)` (≥ 0), or, when the key is
   * absent, `-1 - slot` of the empty slot where it would go. Valid until the table changes.
   */
  probe(hi: number, lo: number): number {
    const slots = this.#slots;
    const mask = this.#mask;
    const h = hi | 0;
    const l = lo | 0;
    let i = mixU64(h, l) & mask;
    for (;;) {
      const base = i * STRIDE;
      if (slots[base + 2] === EMPTY) return -1 - i;
      if (slots[base + 1] === l && slots[base] === h) return i;
      i = (i + 1) & mask;
    }
  }

  /** The value in slot `slot` (from `probe()`, found case). */
  valueAt(slot: number): number {
    return this.#slots[slot * STRIDE + 2]!;
  }

  /** Replaces the value in slot `slot` (from `probe()`, found case). */
  replaceAt(slot: number, value: number): void {
    this.#slots[slot * STRIDE + 2] = value;
  }

  /** Inserts an absent key at `-1 - missing`, where `missing` came from `probe()`. */
  insertAt(missing: number, hi: number, lo: number, value: number): void {
    if ((this.#size + 1) * MAX_LOAD_DENOMINATOR > (this.#mask + 1) * MAX_LOAD_NUMERATOR) {
      this.#grow();
      this.#insertNew(hi | 0, lo | 0, value);
    } else {
      const base = (-1 - missing) * STRIDE;
      this.#slots[base] = hi | 0;
      this.#slots[base + 1] = lo | 0;
      this.#slots[base + 2] = value;
    }
    this.#size++;
  }

  /** Stores `value` (≥ 0) for `(hi, lo)` and returns the previous value, or -1. */
  set(hi: number, lo: number, value: number): number {
    const slots = this.#slots;
    const mask = this.#mask;
    const h = hi | 0;
    const l = lo | 0;
    let i = mixU64(h, l) & mask;
    for (;;) {
      const base = i * STRIDE;
      const old = slots[base + 2]!;
      if (old === EMPTY) break;
      if (slots[base + 1] === l && slots[base] === h) {
        slots[base + 2] = value;
        return old;
      }
      i = (i + 1) & mask;
    }
    if ((this.#size + 1) * MAX_LOAD_DENOMINATOR > (mask + 1) * MAX_LOAD_NUMERATOR) {
      this.#grow();
      this.#insertNew(h, l, value);
    } else {
      const base = i * STRIDE;
      slots[base] = h;
      slots[base + 1] = l;
      slots[base + 2] = value;
    }
    this.#size++;
    return EMPTY;
  }

  /** Removes `(hi, lo)` and returns its value, or -1 when it was absent. */
  delete(hi: number, lo: number): number {
    const slots = this.#slots;
    const mask = this.#mask;
    const h = hi | 0;
    const l = lo | 0;
    let i = mixU64(h, l) & mask;
    for (;;) {
      const base = i * STRIDE;
      const value = slots[base + 2]!;
      if (value === EMPTY) return EMPTY;
      if (slots[base + 1] === l && slots[base] === h) {
        this.#removeAt(i);
        this.#size--;
        return value;
      }
      i = (i + 1) & mask;
    }
  }

  /** Every stored value (in slot order; a value stored under two keys appears twice). */
  values(): Int32Array {
    const out = new Int32Array(this.#size);
    const slots = this.#slots;
    let n = 0;
    for (let base = 2; base < slots.length; base += STRIDE) {
      const value = slots[base]!;
      if (value !== EMPTY) out[n++] = value;
    }
    return out;
  }

  /** Calls `fn(hi, lo, value)` for every entry (the table must not change meanwhile). */
  forEach(fn: (hi: number, lo: number, value: number) => void): void {
    const slots = this.#slots;
    for (let base = 0; base < slots.length; base += STRIDE) {
      const value = slots[base + 2]!;
      if (value !== EMPTY) fn(slots[base]! >>> 0, slots[base + 1]! >>> 0, value);
    }
  }

  /** Backward-shift deletion: pulls later entries of the probe run into the hole. */
  #removeAt(hole: number): void {
    const slots = this.#slots;
    const mask = this.#mask;
    let i = hole;
    let j = hole;
    for (;;) {
      j = (j + 1) & mask;
      const jb = j * STRIDE;
      if (slots[jb + 2] === EMPTY) break;
      const home = mixU64(slots[jb]!, slots[jb + 1]!) & mask;
      // The entry at j may move to i only if its home is not in the cyclic range (i, j].
      const inRange = i <= j ? (home > i && home <= j) : (home > i || home <= j);
      if (inRange) continue;
      const ib = i * STRIDE;
      slots[ib] = slots[jb]!;
      slots[ib + 1] = slots[jb + 1]!;
      slots[ib + 2] = slots[jb + 2]!;
      i = j;
    }
    slots[i * STRIDE + 2] = EMPTY;
  }

  #grow(): void {
    const old = this.#slots;
    const capacity = (this.#mask + 1) * 2;
    this.#slots = new Int32Array(capacity * STRIDE).fill(EMPTY);
    this.#mask = capacity - 1;
    for (let base = 0; base < old.length; base += STRIDE) {
      const value = old[base + 2]!;
      if (value !== EMPTY) this.#insertNew(old[base]!, old[base + 1]!, value);
    }
  }

  /** Inserts a key known to be absent, with room guaranteed. */
  #insertNew(h: number, l: number, value: number): void {
    const slots = this.#slots;
    const mask = this.#mask;
    let i = mixU64(h, l) & mask;
    while (slots[i * STRIDE + 2] !== EMPTY) i = (i + 1) & mask;
    const base = i * STRIDE;
    slots[base] = h;
    slots[base + 1] = l;
    slots[base + 2] = value;
  }
}
