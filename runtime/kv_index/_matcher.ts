/**
 * The `findMatches()` walk over a `NodeArena`, kept apart from the event logic because it is
 * the hottest loop of the router: it reads node records directly, allocates nothing per
 * block, and converts bigint input lazily (a walk usually stops long before the end).
 *
 * Semantics (dynamo-facts §1.2): `active` = the workers of the root's child for the first
 * hash; at each next level, every active worker that the child does not hold scores the
 * depth so far and leaves; the walk stops at a missing child or when no worker is left;
 * survivors score the full matched depth. Workers only in a child are ignored.
 */

import {
  H_KEY_HI,
  H_KEY_LO,
  H_LINK,
  HOT_STRIDE,
  INLINE_WORKERS,
  LINK_CHAINED,
  LINK_SOLE_MASK,
  type NodeArena,
  NONE,
  ROOT,
} from "./_node_arena.ts";
import { OverlapBuffer } from "./overlap_buffer.ts";

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
const LO = LITTLE_ENDIAN ? 0 : 1;
const HI = LITTLE_ENDIAN ? 1 : 0;
/** Bigint input is converted in chunks that double from this size. */
const FIRST_CONVERT_CHUNK = 16;

const NO_BIGINTS: readonly bigint[] = [];

/** Where a walk is: shared by its phases (one object per Matcher, reused). */
interface WalkState {
  /** The request's hashes as int32 halves (the HI / LO elements of each pair). */
  view: Int32Array;
  /** The bigint input still being converted into `view`, up to `limit`. */
  bigs: readonly bigint[];
  limit: number;
  n: number;
  /** The next level to look at, the node matched so far and its depth. */
  i: number;
  cur: number;
  depth: number;
  /** Active workers left; the walk has stopped (missing child or none left). */
  active: number;
  stopped: boolean;
}

/** Walks the tree for a request, writing (worker, depth, tree size) into an `OverlapBuffer`. */
export class Matcher {
  readonly #arena: NodeArena;
  /** Where the current match writes, and each worker's tree size (-1: not reported). */
  #out = new OverlapBuffer();
  #sizes: Int32Array = new Int32Array(0);
  readonly #active = new Int32Array(INLINE_WORKERS);
  #activeBits = new Uint32Array(8);
  #bitsMode = false;
  #scratch64 = new BigUint64Array(64);
  #scratch32 = new Int32Array(this.#scratch64.buffer);
  readonly #at: WalkState = {
    view: new Int32Array(0),
    bigs: NO_BIGINTS,
    limit: 0,
    n: 0,
    i: 0,
    cur: NONE,
    depth: 0,
    active: 0,
    stopped: false,
  };

  constructor(arena: NodeArena) {
    this.#arena = arena;
  }

  /**
   * Walks the tree for `localHashes`, filling `out` with every worker that matched at least
   * one block and whose `sizes[worker]` is not negative (workers that left are not reported).
   */
  match(
    localHashes: BigUint64Array | readonly bigint[],
    out: OverlapBuffer,
    sizes: Int32Array,
  ): void {
    out.count = 0;
    this.#out = out;
    this.#sizes = sizes;
    const n = localHashes.length;
    if (n === 0) return;
    const at = this.#at;
    at.n = n;
    if (localHashes instanceof BigUint64Array) {
      at.view = new Int32Array(localHashes.buffer, localHashes.byteOffset, 2 * n);
      at.bigs = NO_BIGINTS;
      at.limit = n;
    } else {
      if (this.#scratch64.length < n) {
        this.#scratch64 = new BigUint64Array(Math.max(n, this.#scratch64.length * 2));
        this.#scratch32 = new Int32Array(this.#scratch64.buffer);
      }
      at.view = this.#scratch32;
      at.bigs = localHashes;
      at.limit = this.#convert(localHashes, 0, n);
    }
    const first = this.#arena.findChild(ROOT, at.view[HI]!, at.view[LO]!);
    if (first === NONE) return;
    at.active = this.#loadActive(first);
    at.cur = first;
    at.depth = 1;
    at.i = 1;
    at.stopped = at.active === 0;
    // Phases, each handing over to the next as the active set shrinks: more than
    // INLINE_WORKERS workers (a bitset), a few (a list), exactly one.
    if (this.#bitsMode) this.#walkBits(at);
    if (this.#bitsMode) {
      this.#emitBits(at.depth);
      return;
    }
    if (!at.stopped) this.#walkFew(at);
    if (!at.stopped && at.active === 1) this.#walkOne(at, this.#active[0]!);
    for (let j = 0; j < at.active; j++) this.#emit(this.#active[j]!, at.depth);
  }

  /** While the active set is a bitset: intersect it with each next block's workers. */
  #walkBits(at: WalkState): void {
    const a = this.#arena;
    const { view, bigs, n } = at;
    let { i, cur, depth, limit } = at;
    while (this.#bitsMode && i < n) {
      if (i === limit) limit = this.#convert(bigs, limit, n);
      const next = a.findChild(cur, view[2 * i + HI]!, view[2 * i + LO]!);
      if (next === NONE) {
        at.stopped = true;
        break;
      }
      at.active = this.#narrowBits(next, depth);
      if (at.active === 0) {
        at.stopped = true;
        break;
      }
      depth = i + 1;
      cur = next;
      i++;
    }
    at.i = i;
    at.cur = cur;
    at.depth = depth;
    at.limit = limit;
  }

  /** While two to INLINE_WORKERS workers are active: check each one's membership. */
  #walkFew(at: WalkState): void {
    const a = this.#arena;
    const act = this.#active;
    const { view, bigs, n } = at;
    let { i, cur, depth, limit, active: k } = at;
    for (; k > 1 && i < n; i++) {
      if (i === limit) limit = this.#convert(bigs, limit, n);
      const next = a.findChild(cur, view[2 * i + HI]!, view[2 * i + LO]!);
      if (next === NONE) {
        at.stopped = true;
        break;
      }
      // Upstream only looks for dropouts when the child's worker count differs from the
      // active count, so an equal-sized but different set lets a worker through. We check
      // membership for every active worker instead.
      let j = 0;
      while (j < k) {
        const w = act[j]!;
        if (a.hasWorker(next, w)) {
          j++;
        } else {
          this.#emit(w, depth);
          act[j] = act[--k]!;
        }
      }
      if (k === 0) {
        at.stopped = true;
        break;
      }
      depth = i + 1;
      cur = next;
    }
    at.i = i;
    at.cur = cur;
    at.depth = depth;
    at.limit = limit;
    at.active = k;
  }

  /**
   * The walk with a single active worker, the common case past shared prefixes. Runs of
   * chained records held by that worker alone go through `runChain()`; anything else (a
   * child elsewhere, a node shared with other workers) takes one general step.
   */
  #walkOne(at: WalkState, w: number): void {
    const a = this.#arena;
    const { view, bigs, n } = at;
    let { cur, depth, limit } = at;
    let i = at.i;
    outer: for (;;) {
      while (i < limit) {
        const end = runChain(a.hot, view, cur, i, limit, w);
        if (end > i) {
          cur += end - i;
          i = end;
          depth = i;
          continue;
        }
        const next = a.findChild(cur, view[2 * i + HI]!, view[2 * i + LO]!);
        if (next === NONE) break outer;
        const sole = a.hot[next * HOT_STRIDE + H_LINK]! & LINK_SOLE_MASK;
        if (sole !== w && !a.hasWorker(next, w)) break outer;
        i++;
        depth = i;
        cur = next;
      }
      if (limit === n) break;
      limit = this.#convert(bigs, limit, n);
    }
    at.depth = depth;
  }

  /** Converts bigint hashes `[from, …)` into the scratch, doubling the chunk; returns the new limit. */
  #convert(bigs: readonly bigint[], from: number, n: number): number {
    const end = Math.min(n, Math.max(FIRST_CONVERT_CHUNK, from * 2));
    const s = this.#scratch64;
    for (let i = from; i < end; i++) s[i] = bigs[i]!;
    return end;
  }

  /** Loads the first node's workers as the active set; returns how many. */
  #loadActive(node: number): number {
    const a = this.#arena;
    const count = a.workerCount(node);
    const set = a.setIndex(node);
    if (set === NONE) {
      this.#bitsMode = false;
      for (let i = 0; i < count; i++) this.#active[i] = a.inlineWorker(node, i);
      return count;
    }
    this.#bitsMode = true;
    const words = a.wordsPerSet;
    if (this.#activeBits.length !== words) this.#activeBits = new Uint32Array(words);
    const base = set * words;
    const bits = a.bits;
    for (let q = 0; q < words; q++) this.#activeBits[q] = bits[base + q]!;
    return count;
  }

  /** Intersects the active bitset with `next`'s workers, emitting dropouts at `depth`. */
  #narrowBits(next: number, depth: number): number {
    const a = this.#arena;
    const act = this.#activeBits;
    const set = a.setIndex(next);
    let k = 0;
    if (set !== NONE) {
      const bits = a.bits;
      const base = set * act.length;
      for (let q = 0; q < act.length; q++) {
        const x = act[q]!;
        if (x === 0) continue;
        const keep = x & bits[base + q]!;
        let dropped = x ^ keep;
        while (dropped !== 0) {
          const low = dropped & -dropped;
          this.#emit(q * 32 + 31 - Math.clz32(low), depth);
          dropped ^= low;
        }
        act[q] = keep;
        if (keep !== 0) k += popcount(keep);
      }
      return k;
    }
    // `next` holds at most INLINE_WORKERS workers: the survivors go back to the small list.
    const small = this.#active;
    const count = a.workerCount(next);
    for (let i = 0; i < count; i++) {
      const w = a.inlineWorker(next, i);
      const q = w >>> 5;
      if (q < act.length && (act[q]! & (1 << (w & 31))) !== 0) {
        small[k++] = w;
        act[q] = act[q]! & ~(1 << (w & 31));
      }
    }
    this.#emitBits(depth);
    this.#bitsMode = false;
    return k;
  }

  /** Emits every worker left in the active bitset at `depth` and empties it. */
  #emitBits(depth: number): void {
    const act = this.#activeBits;
    for (let q = 0; q < act.length; q++) {
      let x = act[q]!;
      while (x !== 0) {
        const low = x & -x;
        this.#emit(q * 32 + 31 - Math.clz32(low), depth);
        x ^= low;
      }
      act[q] = 0;
    }
  }

  #emit(worker: number, depth: number): void {
    const sizes = this.#sizes;
    const size = worker < sizes.length ? sizes[worker]! : -1;
    if (size >= 0) this.#out.push(worker, depth, size);
  }
}

function popcount(x: number): number {
  let v = x - ((x >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
}

/**
 * Matches levels `[i, limit)` through consecutive records `cur + 1, cur + 2, …` that are each
 * the child of the record before and held by `w` alone; returns the first level that is not
 * matched this way. This is the hottest loop of the router: one 16-byte record per level.
 * (The arena keeps a spare record past the last node, so `cur + 1` is always in bounds.)
 */
function runChain(
  h: Int32Array,
  view: Int32Array,
  cur: number,
  i: number,
  limit: number,
  w: number,
): number {
  const link = w | LINK_CHAINED;
  let nb = (cur + 1) * HOT_STRIDE;
  for (; i < limit; i++, nb += HOT_STRIDE) {
    if (
      h[nb + H_LINK] !== link || h[nb + H_KEY_LO] !== view[2 * i + LO] ||
      h[nb + H_KEY_HI] !== view[2 * i + HI]
    ) break;
  }
  return i;
}
