/**
 * The storage behind `KvIndex`: tree nodes as fixed records in typed arrays, so no
 * JavaScript object is allocated per block. Each node has a 16-byte "hot" record with what
 * the `findMatches()` walk reads (edge key, first child, a link word), four to a cache line,
 * and a 48-byte "cold" record with the rest (parent, block hash, reference count, sibling
 * links, worker set). The link word says in one int32 whether the node's parent is the
 * record just before it and which single worker holds it, so the walk down a chain stored
 * in consecutive records reads one record per level and nothing else.
 *
 * - Children of a node are a doubly linked sibling list (for clearing) plus, for nodes with
 *   two or more children only, entries in one open-addressing table keyed by
 *   `(parent, tokens_hash)`. Chains (one child per node, the common case in long prompts)
 *   never touch the table: a lookup compares the first child's key and is done.
 * - Worker sets hold up to three workers inline; larger sets move to a bitset of
 *   `wordsPerSet` u32 words in a shared arena (worker keys are small dense integers).
 * - Ids are allocated next-fit: the lowest free id at or after a cursor that moves forward
 *   and wraps. A chain stored in one event therefore gets ascending, mostly consecutive ids,
 *   which the walk exploits, even after frees have scattered the free ids.
 *
 * The arena knows nothing about events or reference semantics; `KvIndex` does.
 */

import { mixU64 } from "./_u64_table.ts";

/** The root node's id. It is never freed and has no block hash. */
export const ROOT = 0;
/** "No node". */
export const NONE = -1;
/** Workers stored inside the node record before it switches to a bitset. */
export const INLINE_WORKERS = 3;

// The hot record layout, exported for the matcher's loop (which reads it directly).
/** Int32 fields per hot record (16 bytes). */
export const HOT_STRIDE = 4;
export const H_KEY_HI = 0;
export const H_KEY_LO = 1;
export const H_FIRST_CHILD = 2;
/** The link word: `LINK_CHAINED` when the parent is the record before, `|` the sole worker. */
export const H_LINK = 3;
/** Link bits for "held by no worker or by several" (above every worker key). */
export const LINK_NO_SOLE = 1 << 20;
/** Link flag: the node's parent is the record just before it (`id - 1`). */
export const LINK_CHAINED = 1 << 21;
/** Masks a link word down to its sole worker (or `LINK_NO_SOLE`). */
export const LINK_SOLE_MASK = LINK_CHAINED - 1;

const COLD_STRIDE = 12;
const C_PARENT = 0;
const C_BLOCK_HI = 1;
const C_BLOCK_LO = 2;
const C_REFS = 3;
const C_CHILD_COUNT = 4;
const C_NEXT = 5;
const C_PREV = 6;
const C_WORKER_COUNT = 7;
const C_SET = 8;
const C_W0 = 9;

const MIN_NODES = 1024;
const MIN_TABLE_SLOTS = 64;

function childHash(parent: number, hi: number, lo: number): number {
  return mixU64(hi ^ Math.imul(parent, 0x27d4eb2f), lo);
}

function lowestBit(x: number): number {
  return 31 - Math.clz32(x & -x);
}

/** Fixed-record node storage with child lookup, worker sets and next-fit id allocation. */
export class NodeArena {
  #hot: Int32Array;
  #cold: Int32Array;
  readonly #maxNodes: number;
  #live = 0;

  // Next-fit allocation: ids below `#bump` have been used; free ones have their bit set in
  // `#freeBits`, and `#freeSummary` has a bit per non-zero word of `#freeBits`.
  #bump = 0;
  #cursor = 0;
  #freeCount = 0;
  #freeBits: Uint32Array;
  #freeSummary: Uint32Array;

  #table: Int32Array;
  #tableMask: number;
  #tableSize = 0;

  #bits = new Uint32Array(64);
  #wordsPerSet = 1;
  #setBump = 0;
  #setFree: number[] = [];

  /** `maxNodes` counts the root too. */
  constructor(maxNodes: number) {
    this.#maxNodes = maxNodes;
    const nodes = Math.min(MIN_NODES, maxNodes);
    // One spare hot record past the last node, so that the walk may read "the next record"
    // without a bounds check of its own.
    this.#hot = new Int32Array((nodes + 1) * HOT_STRIDE);
    this.#cold = new Int32Array(nodes * COLD_STRIDE);
    this.#freeBits = new Uint32Array(Math.ceil(nodes / 32));
    this.#freeSummary = new Uint32Array(Math.ceil(this.#freeBits.length / 32));
    this.#table = new Int32Array(MIN_TABLE_SLOTS).fill(NONE);
    this.#tableMask = MIN_TABLE_SLOTS - 1;
    const root = this.alloc(0, 0);
    this.#cold[root * COLD_STRIDE + C_REFS] = 1;
    this.#live = 0;
  }

  /** Nodes in use, not counting the root. */
  get liveNodes(): number {
    return this.#live;
  }

  /** Bytes held by the typed arrays (records, free map, child table, worker bitsets). */
  get byteLength(): number {
    return this.#hot.byteLength + this.#cold.byteLength + this.#freeBits.byteLength +
      this.#freeSummary.byteLength + this.#table.byteLength + this.#bits.byteLength;
  }

  /** The hot records (read-only use; the array is replaced when it grows). */
  get hot(): Int32Array {
    return this.#hot;
  }

  /** u32 words per worker bitset (covers worker keys below `32 * wordsPerSet`). */
  get wordsPerSet(): number {
    return this.#wordsPerSet;
  }

  /** The bitset arena (read-only use; it is replaced when it grows). */
  get bits(): Uint32Array {
    return this.#bits;
  }

  /** A fresh node with no parent, children, workers or references. */
  alloc(blockHi: number, blockLo: number): number {
    let n: number;
    if (this.#freeCount > 0) {
      n = this.#takeFree();
    } else {
      if (this.#bump >= this.#maxNodes) throw new RangeError("Cannot allocate node: arena full");
      n = this.#bump++;
      if (n * COLD_STRIDE >= this.#cold.length) this.#growRecords();
    }
    const h = this.#hot;
    const hb = n * HOT_STRIDE;
    h[hb + H_KEY_HI] = 0;
    h[hb + H_KEY_LO] = 0;
    h[hb + H_FIRST_CHILD] = NONE;
    h[hb + H_LINK] = LINK_NO_SOLE;
    const c = this.#cold;
    const cb = n * COLD_STRIDE;
    c[cb + C_PARENT] = NONE;
    c[cb + C_BLOCK_HI] = blockHi;
    c[cb + C_BLOCK_LO] = blockLo;
    c[cb + C_REFS] = 0;
    c[cb + C_CHILD_COUNT] = 0;
    c[cb + C_NEXT] = NONE;
    c[cb + C_PREV] = NONE;
    c[cb + C_WORKER_COUNT] = 0;
    c[cb + C_SET] = NONE;
    this.#live++;
    return n;
  }

  /**
   * A new node for a stored block, created under `p` with edge key `(keyHi, keyLo)`, held
   * by `worker`, with `refs` references: one call instead of alloc + link + addWorker.
   * (Positional arguments: this is the store hot path.)
   */
  allocChild(
    p: number,
    keyHi: number,
    keyLo: number,
    blockHi: number,
    blockLo: number,
    worker: number,
    refs: number,
  ): number {
    const n = this.alloc(blockHi, blockLo);
    this.link(n, p, keyHi, keyLo);
    const cb = n * COLD_STRIDE;
    this.#cold[cb + C_W0] = worker;
    this.#cold[cb + C_WORKER_COUNT] = 1;
    this.#cold[cb + C_REFS] = refs;
    this.#hot[n * HOT_STRIDE + H_LINK] = (p === n - 1 ? LINK_CHAINED : 0) | worker;
    return n;
  }

  /** Returns a node to the free ids. It must have no parent and no children. */
  free(n: number): void {
    const c = this.#cold;
    const cb = n * COLD_STRIDE;
    const set = c[cb + C_SET]!;
    if (set !== NONE) this.#releaseSet(set);
    c[cb + C_SET] = NONE;
    c[cb + C_WORKER_COUNT] = 0;
    c[cb + C_REFS] = -1;
    this.#hot[n * HOT_STRIDE + H_LINK] = LINK_NO_SOLE;
    const word = n >>> 5;
    const before = this.#freeBits[word]!;
    this.#freeBits[word] = before | (1 << (n & 31));
    if (before === 0) {
      const sw = word >>> 5;
      this.#freeSummary[sw] = this.#freeSummary[sw]! | (1 << (word & 31));
    }
    this.#freeCount++;
    this.#live--;
  }

  parent(n: number): number {
    return this.#cold[n * COLD_STRIDE + C_PARENT]!;
  }

  refs(n: number): number {
    return this.#cold[n * COLD_STRIDE + C_REFS]!;
  }

  /** Adds `delta` to the reference count and returns the new count. */
  addRefs(n: number, delta: number): number {
    const i = n * COLD_STRIDE + C_REFS;
    const v = this.#cold[i]! + delta;
    this.#cold[i] = v;
    return v;
  }

  childCount(n: number): number {
    return this.#cold[n * COLD_STRIDE + C_CHILD_COUNT]!;
  }

  firstChild(n: number): number {
    return this.#hot[n * HOT_STRIDE + H_FIRST_CHILD]!;
  }

  workerCount(n: number): number {
    return this.#cold[n * COLD_STRIDE + C_WORKER_COUNT]!;
  }

  /** The bitset index of a node with more than INLINE_WORKERS workers, else NONE. */
  setIndex(n: number): number {
    return this.#cold[n * COLD_STRIDE + C_SET]!;
  }

  /** The i-th inline worker (valid while setIndex(n) is NONE and i < workerCount(n)). */
  inlineWorker(n: number, i: number): number {
    return this.#cold[n * COLD_STRIDE + C_W0 + i]!;
  }

  /** The child of `p` under tokens hash `(hi, lo)`, or NONE. */
  findChild(p: number, hi: number, lo: number): number {
    const h = this.#hot;
    const first = h[p * HOT_STRIDE + H_FIRST_CHILD]!;
    if (first === NONE) return NONE;
    const fb = first * HOT_STRIDE;
    if (h[fb + H_KEY_LO] === (lo | 0) && h[fb + H_KEY_HI] === (hi | 0)) return first;
    if (this.#cold[p * COLD_STRIDE + C_CHILD_COUNT] === 1) return NONE;
    return this.findChildInTable(p, hi | 0, lo | 0);
  }

  /** Makes `child` (which has no parent) the child of `p` under key `(hi, lo)`. */
  link(child: number, p: number, hi: number, lo: number): void {
    const h = this.#hot;
    const c = this.#cold;
    const cb = child * COLD_STRIDE;
    const pb = p * COLD_STRIDE;
    c[cb + C_PARENT] = p;
    h[child * HOT_STRIDE + H_KEY_HI] = hi;
    h[child * HOT_STRIDE + H_KEY_LO] = lo;
    const first = h[p * HOT_STRIDE + H_FIRST_CHILD]!;
    c[cb + C_NEXT] = first;
    c[cb + C_PREV] = NONE;
    if (first !== NONE) c[first * COLD_STRIDE + C_PREV] = child;
    h[p * HOT_STRIDE + H_FIRST_CHILD] = child;
    const count = c[pb + C_CHILD_COUNT]! + 1;
    c[pb + C_CHILD_COUNT] = count;
    if (count === 2) this.#tableInsert(first);
    if (count >= 2) this.#tableInsert(child);
    this.#updateLink(child);
  }

  /** Detaches `child` from its parent (reference counts are the caller's business). */
  unlink(child: number): void {
    const h = this.#hot;
    const c = this.#cold;
    const cb = child * COLD_STRIDE;
    const p = c[cb + C_PARENT]!;
    const pb = p * COLD_STRIDE;
    const count = c[pb + C_CHILD_COUNT]!;
    if (count >= 2) this.#tableDelete(child);
    const next = c[cb + C_NEXT]!;
    const prev = c[cb + C_PREV]!;
    if (prev === NONE) h[p * HOT_STRIDE + H_FIRST_CHILD] = next;
    else c[prev * COLD_STRIDE + C_NEXT] = next;
    if (next !== NONE) c[next * COLD_STRIDE + C_PREV] = prev;
    c[pb + C_CHILD_COUNT] = count - 1;
    if (count === 2) this.#tableDelete(h[p * HOT_STRIDE + H_FIRST_CHILD]!);
    c[cb + C_PARENT] = NONE;
    c[cb + C_NEXT] = NONE;
    c[cb + C_PREV] = NONE;
    this.#updateLink(child);
  }

  hasWorker(n: number, w: number): boolean {
    const c = this.#cold;
    const b = n * COLD_STRIDE;
    const set = c[b + C_SET]!;
    if (set === NONE) {
      const count = c[b + C_WORKER_COUNT]!;
      for (let i = 0; i < count; i++) if (c[b + C_W0 + i] === w) return true;
      return false;
    }
    const word = w >>> 5;
    if (word >= this.#wordsPerSet) return false;
    return (this.#bits[set * this.#wordsPerSet + word]! & (1 << (w & 31))) !== 0;
  }

  /** Adds `w`; returns false when it was already there. */
  addWorker(n: number, w: number): boolean {
    if (this.hasWorker(n, w)) return false;
    const c = this.#cold;
    const b = n * COLD_STRIDE;
    const count = c[b + C_WORKER_COUNT]!;
    let set = c[b + C_SET]!;
    if (set === NONE && count < INLINE_WORKERS) {
      c[b + C_W0 + count] = w;
    } else {
      if (set === NONE) {
        let maxKey = w;
        for (let i = 0; i < count; i++) maxKey = Math.max(maxKey, c[b + C_W0 + i]!);
        this.#ensureWordsFor(maxKey);
        set = this.#allocSet();
        for (let i = 0; i < count; i++) this.#setBit(set, c[b + C_W0 + i]!);
        c[b + C_SET] = set;
      } else {
        this.#ensureWordsFor(w);
      }
      this.#setBit(set, w);
    }
    c[b + C_WORKER_COUNT] = count + 1;
    this.#updateLink(n);
    return true;
  }

  /** Removes `w`; returns false when it was not there. */
  removeWorker(n: number, w: number): boolean {
    const c = this.#cold;
    const b = n * COLD_STRIDE;
    const count = c[b + C_WORKER_COUNT]!;
    const set = c[b + C_SET]!;
    if (set === NONE) {
      for (let i = 0; i < count; i++) {
        if (c[b + C_W0 + i] === w) {
          c[b + C_W0 + i] = c[b + C_W0 + count - 1]!;
          c[b + C_WORKER_COUNT] = count - 1;
          this.#updateLink(n);
          return true;
        }
      }
      return false;
    }
    if (!this.hasWorker(n, w)) return false;
    const words = this.#wordsPerSet;
    const i = set * words + (w >>> 5);
    this.#bits[i] = this.#bits[i]! & ~(1 << (w & 31));
    c[b + C_WORKER_COUNT] = count - 1;
    if (count - 1 <= INLINE_WORKERS) {
      // Back to inline storage: enumerate the remaining bits.
      let k = 0;
      const base = set * words;
      for (let q = 0; q < words; q++) {
        let x = this.#bits[base + q]!;
        while (x !== 0) {
          c[b + C_W0 + k++] = q * 32 + lowestBit(x);
          x &= x - 1;
        }
      }
      this.#releaseSet(set);
      c[b + C_SET] = NONE;
      this.#updateLink(n);
    }
    return true;
  }

  /** Recomputes `n`'s link word from its parent and workers. */
  #updateLink(n: number): void {
    const b = n * COLD_STRIDE;
    const c = this.#cold;
    const chained = n !== ROOT && c[b + C_PARENT] === n - 1 ? LINK_CHAINED : 0;
    const sole = c[b + C_WORKER_COUNT] === 1 && c[b + C_SET] === NONE ? c[b + C_W0]! : LINK_NO_SOLE;
    this.#hot[n * HOT_STRIDE + H_LINK] = chained | sole;
  }

  /** The lowest free id at or after the cursor, wrapping; there must be one. */
  #takeFree(): number {
    const bits = this.#freeBits;
    const summary = this.#freeSummary;
    let word = this.#cursor >>> 5;
    let x = word < bits.length ? bits[word]! & (-1 << (this.#cursor & 31)) : 0;
    if (x === 0) {
      // Scan the summary for the next non-empty word after `word`, wrapping to 0 once.
      let from = word + 1;
      word = -1;
      for (let pass = 0; pass < 2 && word < 0; pass++) {
        for (let sw = from >>> 5; sw < summary.length; sw++) {
          const y = summary[sw]! & (sw === from >>> 5 ? -1 << (from & 31) : -1);
          if (y !== 0) {
            word = sw * 32 + lowestBit(y);
            break;
          }
        }
        from = 0;
      }
      x = bits[word]!;
    }
    const n = word * 32 + lowestBit(x);
    bits[word] = bits[word]! & ~(1 << (n & 31));
    if (bits[word] === 0) {
      const sw = word >>> 5;
      summary[sw] = summary[sw]! & ~(1 << (word & 31));
    }
    this.#cursor = n + 1;
    this.#freeCount--;
    return n;
  }

  #setBit(set: number, w: number): void {
    const i = set * this.#wordsPerSet + (w >>> 5);
    this.#bits[i] = this.#bits[i]! | (1 << (w & 31));
  }

  #allocSet(): number {
    const reused = this.#setFree.pop();
    const set = reused ?? this.#setBump++;
    const words = this.#wordsPerSet;
    const need = (set + 1) * words;
    if (need > this.#bits.length) {
      const bigger = new Uint32Array(Math.max(need, this.#bits.length * 2));
      bigger.set(this.#bits);
      this.#bits = bigger;
    }
    this.#bits.fill(0, set * words, need);
    return set;
  }

  #releaseSet(set: number): void {
    this.#setFree.push(set);
  }

  /** Re-lays the bitset arena out with more words per set when a larger worker key shows up. */
  #ensureWordsFor(w: number): void {
    const old = this.#wordsPerSet;
    if (w >>> 5 < old) return;
    let words = old;
    while (w >>> 5 >= words) words *= 2;
    const sets = this.#setBump;
    const bigger = new Uint32Array(Math.max(64, sets * words * 2));
    for (let s = 0; s < sets; s++) {
      bigger.set(this.#bits.subarray(s * old, s * old + old), s * words);
    }
    this.#bits = bigger;
    this.#wordsPerSet = words;
  }

  #growRecords(): void {
    const nodes = Math.min(this.#maxNodes, (this.#cold.length / COLD_STRIDE) * 2);
    const hot = new Int32Array((nodes + 1) * HOT_STRIDE);
    hot.set(this.#hot);
    this.#hot = hot;
    const cold = new Int32Array(nodes * COLD_STRIDE);
    cold.set(this.#cold);
    this.#cold = cold;
    const freeBits = new Uint32Array(Math.ceil(nodes / 32));
    freeBits.set(this.#freeBits);
    this.#freeBits = freeBits;
    const summary = new Uint32Array(Math.ceil(freeBits.length / 32));
    summary.set(this.#freeSummary);
    this.#freeSummary = summary;
  }

  /** The child of `p` (which has two or more children) under int32 key halves `(hi, lo)`. */
  findChildInTable(p: number, hi: number, lo: number): number {
    const t = this.#table;
    const h = this.#hot;
    const mask = this.#tableMask;
    let i = childHash(p, hi, lo) & mask;
    for (;;) {
      const c = t[i]!;
      if (c === NONE) return NONE;
      const hb = c * HOT_STRIDE;
      if (
        h[hb + H_KEY_LO] === lo && h[hb + H_KEY_HI] === hi &&
        this.#cold[c * COLD_STRIDE + C_PARENT] === p
      ) {
        return c;
      }
      i = (i + 1) & mask;
    }
  }

  #tableHome(c: number): number {
    const hb = c * HOT_STRIDE;
    const parent = this.#cold[c * COLD_STRIDE + C_PARENT]!;
    return childHash(parent, this.#hot[hb + H_KEY_HI]!, this.#hot[hb + H_KEY_LO]!) &
      this.#tableMask;
  }

  #tableInsert(c: number): void {
    if ((this.#tableSize + 1) * 4 > (this.#tableMask + 1) * 3) this.#tableGrow();
    const t = this.#table;
    const mask = this.#tableMask;
    let i = this.#tableHome(c);
    while (t[i] !== NONE) i = (i + 1) & mask;
    t[i] = c;
    this.#tableSize++;
  }

  #tableDelete(c: number): void {
    const t = this.#table;
    const mask = this.#tableMask;
    let i = this.#tableHome(c);
    while (t[i] !== c) i = (i + 1) & mask;
    // Backward-shift deletion, as in U64Table.
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const e = t[j]!;
      if (e === NONE) break;
      const home = this.#tableHome(e);
      const inRange = i <= j ? (home > i && home <= j) : (home > i || home <= j);
      if (inRange) continue;
      t[i] = e;
      i = j;
    }
    t[i] = NONE;
    this.#tableSize--;
  }

  #tableGrow(): void {
    const old = this.#table;
    const slots = old.length * 2;
    this.#table = new Int32Array(slots).fill(NONE);
    this.#tableMask = slots - 1;
    this.#tableSize = 0;
    for (let i = 0; i < old.length; i++) {
      const c = old[i]!;
      if (c !== NONE) this.#tableInsert(c);
    }
  }
}
