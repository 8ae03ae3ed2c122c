import type { KvCacheEventData, KvStoredBlock } from "../protocol/mod.ts";
import { NodeArena, NONE, ROOT } from "./_node_arena.ts";
import { Matcher } from "./_matcher.ts";
import { U64Table } from "./_u64_table.ts";
import { OverlapBuffer, type WorkerKey } from "./overlap_buffer.ts";

export { OverlapBuffer, type WorkerKey };

/** The outcome of applying one event (the `status` label of Dynamo's events-applied metric). */
export type ApplyStatus =
  | "ok"
  | "parent_block_not_found"
  | "block_not_found"
  | "invalid_block"
  | "tree_full";

/** One stored block: the engine's chained hash and Dynamo's LocalBlockHash, both u64. */
export interface StoredBlockInput {
  readonly blockHash: bigint;
  readonly tokensHash: bigint;
}

/** Options for `KvIndex`. */
export interface KvIndexOptions {
  /** Distinct blocks (tree nodes) the index may hold (`--router-max-tree-size`-style bound). */
  readonly maxTreeSizeBlocks?: number;
}

/** The default bound on distinct blocks: 2^20 * 8. */
export const DEFAULT_MAX_TREE_SIZE_BLOCKS = 2 ** 20 * 8;
/** The largest accepted `maxTreeSizeBlocks` (records are 64 bytes: 4 GiB at this size). */
export const MAX_TREE_SIZE_BLOCKS_LIMIT = 2 ** 26;
/** Worker keys are integers in [0, WORKER_KEY_LIMIT). */
export const WORKER_KEY_LIMIT = 2 ** 20;

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
/** Index of the low / high u32 half of a u64 in a Uint32Array view. */
const LO = LITTLE_ENDIAN ? 0 : 1;
const HI = LITTLE_ENDIAN ? 1 : 0;

/** Per-worker state: the `block_hash → node` lookup (its size is the worker's tree size). */
class WorkerState {
  lookup = new U64Table();
}

/**
 * The KV-aware router's index: an event-sourced radix tree over the KV cache blocks of many
 * workers, with the semantics of Dynamo's `RadixTree` (lib/kv-router/src/radix_tree.rs,
 * dynamo-facts §1.2). Pure: no clocks, no I/O. Not thread-safe (one JavaScript thread).
 *
 * Nodes are keyed in their parent by tokens hash (LocalBlockHash); each node records the
 * workers holding it and its engine block hash; each worker has a lookup from its engine
 * block hashes to nodes, whose size is the worker's tree size.
 *
 * - Stored: starts at the worker's node for `parentHash` (or the root); an unknown parent
 *   rejects the whole event. Per block: the child by tokens hash, else the worker's node
 *   for the block hash (reused), else a new node; the worker is added, the lookup set.
 * - Removed: per hash, the worker leaves the node; a node left with no workers loses its
 *   children; descendants are not touched. Unknown hashes: `block_not_found`, rest applied.
 * - Cleared drops the worker from all its lookup's nodes and keeps an empty lookup (as the
 *   Cleared event does upstream, it creates one for an unknown worker); `removeWorker()`
 *   also forgets the worker. A Cleared event applies to every dp_rank: the caller calls
 *   `applyCleared()` for each of the worker's keys.
 *
 * Where this differs from upstream, on purpose:
 * - `findMatches()` checks every active worker's membership at each level (upstream skips
 *   the check when the counts are equal, letting a worker through on an equal-sized but
 *   different set), and does not report workers that have no lookup (removed ones).
 * - A node has one parent: reusing the worker's node for a block hash moves it under the
 *   new parent (upstream adds a second parent edge). A reuse that would make a cycle (the
 *   node is the parent or one of its ancestors) is `invalid_block`, not only the
 *   self-reference; blocks before it stay applied, as upstream.
 * - Lifetime: a node lives while it has a parent or a lookup entry points to it, and an
 *   attached node with no workers and no children is detached at once (upstream keeps such
 *   empty nodes), so empty nodes never accumulate.
 * - Bounds: a store that would take the index past `maxTreeSizeBlocks` distinct blocks, or a
 *   worker's lookup past that many entries, is rejected with `tree_full`. The decision is
 *   made before applying, by a dry run of the walk; should a store with aliased hashes need
 *   more nodes than the dry run foresaw, it stops at the bound, keeping its earlier blocks.
 */
export class KvIndex {
  readonly #maxBlocks: number;
  readonly #arena: NodeArena;
  readonly #matcher: Matcher;
  #workers: (WorkerState | undefined)[] = [];
  /** Lookup size per worker key, -1 for unknown workers: dense, so findMatches reads it cheaply. */
  #sizes = new Int32Array(64).fill(-1);

  // Scratch, reused so that no call allocates per block.
  readonly #s64 = new BigUint64Array(1);
  readonly #s32 = new Uint32Array(this.#s64.buffer);
  #blockHashes = new Uint32Array(256);
  #tokensHashes = new Uint32Array(256);
  #killStack: number[] = [];

  constructor(options: KvIndexOptions = {}) {
    const max = options.maxTreeSizeBlocks ?? DEFAULT_MAX_TREE_SIZE_BLOCKS;
    if (!Number.isInteger(max) || max < 1 || max > MAX_TREE_SIZE_BLOCKS_LIMIT) {
      throw new RangeError(
        `Cannot create KvIndex: maxTreeSizeBlocks must be an integer in [1, ${MAX_TREE_SIZE_BLOCKS_LIMIT}], got ${max}`,
      );
    }
    this.#maxBlocks = max;
    this.#arena = new NodeArena(max + 1);
    this.#matcher = new Matcher(this.#arena);
  }

  /** The configured bound on distinct blocks. */
  get maxTreeSizeBlocks(): number {
    return this.#maxBlocks;
  }

  /** Distinct blocks (tree nodes) indexed now. */
  get sizeBlocks(): number {
    return this.#arena.liveNodes;
  }

  /** Bytes held by the index's typed arrays (nodes, child table, worker lookups). */
  get memoryBytes(): number {
    let bytes = this.#arena.byteLength + this.#blockHashes.byteLength * 2;
    for (const state of this.#workers) if (state !== undefined) bytes += state.lookup.byteLength;
    return bytes;
  }

  /** Every worker key that has blocks or an (empty) lookup entry, ascending. */
  workers(): WorkerKey[] {
    const out: WorkerKey[] = [];
    for (let w = 0; w < this.#workers.length; w++) if (this.#workers[w] !== undefined) out.push(w);
    return out;
  }

  /** How many blocks `worker` has in its lookup (0 for an unknown worker). */
  workerTreeSize(worker: WorkerKey): number {
    return worker < this.#sizes.length ? Math.max(0, this.#sizes[worker]!) : 0;
  }

  /** Convenience: applies one internal KvCacheEventData (runtime/protocol). */
  applyEvent(worker: WorkerKey, data: KvCacheEventData): ApplyStatus {
    if (data === "cleared") {
      this.applyCleared(worker);
      return "ok";
    }
    if ("stored" in data) {
      checkWorker(worker);
      const blocks: readonly KvStoredBlock[] = data.stored.blocks;
      this.#reserve(blocks.length);
      for (let i = 0; i < blocks.length; i++) {
        this.#put(this.#blockHashes, i, blocks[i]!.block_hash);
        this.#put(this.#tokensHashes, i, blocks[i]!.tokens_hash);
      }
      return this.#store(worker, data.stored.parent_hash, blocks.length);
    }
    return this.applyRemoved(worker, data.removed.block_hashes);
  }

  /**
   * A Stored event: attaches `blocks` as a chain under the worker's block `parentHash` (or
   * under the root when null). An unknown parent rejects the whole event.
   */
  applyStored(
    worker: WorkerKey,
    parentHash: bigint | null,
    blocks: readonly StoredBlockInput[],
  ): ApplyStatus {
    checkWorker(worker);
    this.#reserve(blocks.length);
    for (let i = 0; i < blocks.length; i++) {
      this.#put(this.#blockHashes, i, blocks[i]!.blockHash);
      this.#put(this.#tokensHashes, i, blocks[i]!.tokensHash);
    }
    return this.#store(worker, parentHash, blocks.length);
  }

  /** `applyStored()` with the hashes as two parallel arrays (no object per block). */
  applyStoredHashes(
    worker: WorkerKey,
    parentHash: bigint | null,
    hashes: {
      readonly blockHashes: BigUint64Array | readonly bigint[];
      readonly tokensHashes: BigUint64Array | readonly bigint[];
    },
  ): ApplyStatus {
    checkWorker(worker);
    const n = hashes.blockHashes.length;
    if (hashes.tokensHashes.length !== n) {
      throw new RangeError(
        `Cannot apply stored hashes: ${n} block hashes but ${hashes.tokensHashes.length} tokens hashes`,
      );
    }
    this.#reserve(n);
    for (let i = 0; i < n; i++) {
      this.#put(this.#blockHashes, i, hashes.blockHashes[i]!);
      this.#put(this.#tokensHashes, i, hashes.tokensHashes[i]!);
    }
    return this.#store(worker, parentHash, n);
  }

  /**
   * A Removed event: per hash, drops the worker from the block (and, when the block is left
   * with no workers, its children); no cascade to descendants. Unknown hashes give
   * `block_not_found`, but the rest of the batch is still applied.
   */
  applyRemoved(worker: WorkerKey, blockHashes: readonly bigint[]): ApplyStatus {
    checkWorker(worker);
    const state = this.#ensureWorker(worker);
    const lookup = state.lookup;
    const n = blockHashes.length;
    const s32 = this.#s32;
    let status: ApplyStatus = "ok";
    for (let i = 0; i < n; i++) {
      this.#s64[0] = blockHashes[i]!;
      const node = lookup.delete(s32[HI]!, s32[LO]!);
      if (node === NONE) {
        status = "block_not_found";
        continue;
      }
      this.#removeWorkerFromNode(node, worker);
      this.#release(node);
    }
    this.#sizes[worker] = lookup.size;
    return status;
  }

  /** A Cleared event: drops the worker from all its blocks and keeps an empty lookup. */
  applyCleared(worker: WorkerKey): void {
    checkWorker(worker);
    this.#clear(worker, this.#ensureWorker(worker));
  }

  /** The worker left discovery: drops it from all its blocks and forgets it. */
  removeWorker(worker: WorkerKey): void {
    checkWorker(worker);
    const state = this.#workers[worker];
    if (state === undefined) return;
    this.#clear(worker, state);
    this.#workers[worker] = undefined;
    this.#sizes[worker] = -1;
  }

  /**
   * Per-worker overlap for a request's local (tokens) hashes of its full blocks, in order:
   * the depth, in blocks, to which each worker holds the request's prefix, and each such
   * worker's tree size. Written into `out` (grown as needed; a fresh buffer when omitted),
   * which is returned.
   */
  findMatches(
    localHashes: BigUint64Array | readonly bigint[],
    out: OverlapBuffer = new OverlapBuffer(),
  ): OverlapBuffer {
    this.#matcher.match(localHashes, out, this.#sizes);
    return out;
  }

  // ---- events ---------------------------------------------------------------------------

  /** Applies a Stored event whose hashes are in the scratch arrays. */
  #store(worker: number, parentHash: bigint | null, n: number): ApplyStatus {
    const state = this.#ensureWorker(worker);
    const status = this.#storeBlocks(worker, state, parentHash, n);
    this.#sizes[worker] = state.lookup.size;
    return status;
  }

  #storeBlocks(
    worker: number,
    state: WorkerState,
    parentHash: bigint | null,
    n: number,
  ): ApplyStatus {
    const lookup = state.lookup;
    const a = this.#arena;
    let cur = ROOT;
    if (parentHash !== null) {
      this.#s64[0] = parentHash;
      cur = lookup.get(this.#s32[HI]!, this.#s32[LO]!);
      if (cur === NONE) return "parent_block_not_found";
    }
    if (n === 0) return "ok";
    const max = this.#maxBlocks;
    if (a.liveNodes + n > max && a.liveNodes + this.#dryCreations(lookup, cur, n) > max) {
      return "tree_full";
    }
    const bh = this.#blockHashes;
    const th = this.#tokensHashes;
    for (let i = 0; i < n; i++) {
      const bHi = bh[2 * i]!;
      const bLo = bh[2 * i + 1]!;
      const tHi = th[2 * i]!;
      const tLo = th[2 * i + 1]!;
      const slot = lookup.probe(bHi, bLo);
      const prev = slot >= 0 ? lookup.valueAt(slot) : NONE;
      let child = a.findChild(cur, tHi, tLo);
      if (child === NONE && prev === NONE) {
        // The common case: a new block. Safety nets for streams the dry run cannot foresee
        // (aliased hashes) stop the store here.
        if (lookup.size >= max || a.liveNodes >= max) return "tree_full";
        child = a.allocChild(cur, tHi, tLo, bHi, bLo, worker, 2);
        lookup.insertAt(slot, bHi, bLo, child);
        cur = child;
        continue;
      }
      if (prev === NONE && lookup.size >= max) return "tree_full";
      if (child === NONE) {
        // Reuse the worker's node for this block hash, moving it under `cur`. Upstream adds
        // a second parent edge instead; a node here has one parent.
        if (this.#isSelfOrAncestor(prev, cur)) return "invalid_block";
        const oldParent = a.parent(prev);
        if (oldParent !== NONE) a.unlink(prev);
        else a.addRefs(prev, 1);
        a.link(prev, cur, tHi, tLo);
        if (oldParent !== NONE) this.#pruneUp(oldParent);
        child = prev;
      }
      a.addWorker(child, worker);
      if (prev !== child) {
        if (slot >= 0) lookup.replaceAt(slot, child);
        else lookup.insertAt(slot, bHi, bLo, child);
        a.addRefs(child, 1);
        if (prev !== NONE) this.#release(prev);
      }
      cur = child;
    }
    return "ok";
  }

  /**
   * How many nodes a store would create, walking the current tree: a block creates a node
   * unless it is an existing child by tokens hash or the worker's lookup has its block hash.
   */
  #dryCreations(lookup: U64Table, start: number, n: number): number {
    const a = this.#arena;
    const bh = this.#blockHashes;
    const th = this.#tokensHashes;
    let cur = start;
    let virtual = false;
    let created = 0;
    for (let i = 0; i < n; i++) {
      if (!virtual) {
        const child = a.findChild(cur, th[2 * i]!, th[2 * i + 1]!);
        if (child !== NONE) {
          cur = child;
          continue;
        }
      }
      const reused = lookup.get(bh[2 * i]!, bh[2 * i + 1]!);
      if (reused !== NONE) {
        cur = reused;
        virtual = false;
        continue;
      }
      created++;
      virtual = true;
    }
    return created;
  }

  #isSelfOrAncestor(node: number, of: number): boolean {
    const a = this.#arena;
    for (let x = of; x !== NONE; x = a.parent(x)) if (x === node) return true;
    return false;
  }

  /** Removes `worker` from `node`; a node left with no workers loses its children. */
  #removeWorkerFromNode(node: number, worker: number): void {
    const a = this.#arena;
    a.removeWorker(node, worker);
    if (a.workerCount(node) !== 0) return;
    for (let c = a.firstChild(node); c !== NONE; c = a.firstChild(node)) {
      a.unlink(c);
      this.#release(c);
    }
    this.#pruneUp(node);
  }

  /** Detaches attached nodes with no workers and no children, walking up from `node`. */
  #pruneUp(node: number): void {
    const a = this.#arena;
    let p = node;
    while (p !== ROOT && a.workerCount(p) === 0 && a.childCount(p) === 0) {
      const parent = a.parent(p);
      if (parent === NONE) return;
      a.unlink(p);
      this.#release(p);
      p = parent;
    }
  }

  /** Drops one reference; a node with none left is freed, and its children lose theirs. */
  #release(node: number): void {
    const a = this.#arena;
    if (a.addRefs(node, -1) !== 0) return;
    const stack = this.#killStack;
    stack.push(node);
    while (stack.length > 0) {
      const x = stack.pop()!;
      for (let c = a.firstChild(x); c !== NONE; c = a.firstChild(x)) {
        a.unlink(c);
        if (a.addRefs(c, -1) === 0) stack.push(c);
      }
      a.free(x);
    }
  }

  #clear(worker: number, state: WorkerState): void {
    const nodes = state.lookup.values();
    state.lookup = new U64Table();
    for (let i = 0; i < nodes.length; i++) this.#removeWorkerFromNode(nodes[i]!, worker);
    for (let i = 0; i < nodes.length; i++) this.#release(nodes[i]!);
    this.#sizes[worker] = 0;
  }

  #ensureWorker(worker: number): WorkerState {
    const existing = this.#workers[worker];
    if (existing !== undefined) return existing;
    while (this.#workers.length < worker) this.#workers.push(undefined);
    const state = new WorkerState();
    this.#workers[worker] = state;
    if (worker >= this.#sizes.length) {
      let length = this.#sizes.length;
      while (length <= worker) length *= 2;
      const sizes = new Int32Array(length).fill(-1);
      sizes.set(this.#sizes);
      this.#sizes = sizes;
    }
    this.#sizes[worker] = 0;
    return state;
  }

  #reserve(blocks: number): void {
    if (this.#blockHashes.length >= blocks * 2) return;
    let length = this.#blockHashes.length;
    while (length < blocks * 2) length *= 2;
    this.#blockHashes = new Uint32Array(length);
    this.#tokensHashes = new Uint32Array(length);
  }

  /** Writes a u64 as `[hi, lo]` at block `i` of a scratch array. */
  #put(target: Uint32Array, i: number, hash: bigint): void {
    this.#s64[0] = hash;
    target[2 * i] = this.#s32[HI]!;
    target[2 * i + 1] = this.#s32[LO]!;
  }
}

function checkWorker(worker: number): void {
  if (!Number.isInteger(worker) || worker < 0 || worker >= WORKER_KEY_LIMIT) {
    throw new RangeError(
      `Cannot apply to worker ${worker}: a worker key must be an integer in [0, ${WORKER_KEY_LIMIT})`,
    );
  }
}
