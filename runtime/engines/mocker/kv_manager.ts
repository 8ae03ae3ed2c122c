import type { KvCacheEvent, KvStoredBlock } from "../../protocol/mod.ts";

/**
 * One GPU KV block. Full blocks are content-addressed by their sequence hash and shared
 * between sequences through a reference count; at refcount 0 they sit in the inactive
 * (LRU) pool until reused or evicted.
 */
export class KvBlock {
  /** Dynamo's SequenceHash of the block (the event's `block_hash`). */
  readonly hash: bigint;
  refCount = 0;
  /** In the prefix cache (false once `clear()` has dropped it while still in use). */
  cached = true;
  /** Monotonic stamp taken when the block last became inactive; orders the LRU list. */
  lruStamp = 0;
  prev: KvBlock | null = null;
  next: KvBlock | null = null;

  constructor(hash: bigint) {
    this.hash = hash;
  }
}

/**
 * Stands for a block owned by one sequence that is not in the prefix cache: a partial tail
 * block, or any block when prefix caching is off. It takes capacity but is never in events.
 */
export const PRIVATE_BLOCK: KvBlock = Object.freeze(new KvBlock(-1n)) as KvBlock;

/** What the manager needs to know about a sequence's full blocks (hashed once, by the owner). */
export interface KvBlockSource {
  /** SequenceHash of full block `index`. */
  sequenceHash(index: number): bigint;
  /** LocalBlockHash (XXH3-64 of the block's tokens, seed 1337) of full block `index`. */
  localHash(index: number): bigint;
  /** The token ids of full block `index`. */
  blockTokenIds(index: number): number[];
}

export interface KvManagerOptions {
  readonly numGpuBlocks: number;
  readonly enablePrefixCaching: boolean;
  readonly dpRank?: number;
  /** Include token ids in Stored events (default true). */
  readonly emitTokenIds?: boolean;
}

/**
 * The vLLM-style KV block manager of Dynamo's mocker (§4.4): capacity `numGpuBlocks`, an
 * active refcounted pool and an inactive LRU pool kept for prefix reuse. It records the
 * KV events a real engine would publish; `drainEvents()` hands them over.
 */
export class KvManager {
  readonly totalBlocks: number;
  readonly prefixCachingEnabled: boolean;
  readonly #dpRank: number;
  readonly #emitTokenIds: boolean;
  readonly #cache = new Map<bigint, KvBlock>();
  /** Blocks taking capacity: cached ones (active or inactive) and private ones. */
  #usedBlocks = 0;
  #inactiveBlocks = 0;
  #lruHead: KvBlock | null = null;
  #lruTail: KvBlock | null = null;
  #lruCounter = 0;
  #nextEventId = 0;
  #events: KvCacheEvent[] = [];
  readonly #scratch: (KvBlock | undefined)[] = [];
  readonly #storedScratch: number[] = [];

  constructor(options: KvManagerOptions) {
    if (!Number.isInteger(options.numGpuBlocks) || options.numGpuBlocks < 1) {
      throw new RangeError(`Cannot create KV manager: numGpuBlocks must be >= 1`);
    }
    this.totalBlocks = options.numGpuBlocks;
    this.prefixCachingEnabled = options.enablePrefixCaching;
    this.#dpRank = options.dpRank ?? 0;
    this.#emitTokenIds = options.emitTokenIds ?? true;
  }

  /** Blocks in use: active (referenced) plus inactive (cached, evictable). */
  get usedBlocks(): number {
    return this.#usedBlocks;
  }

  /** Blocks referenced by at least one sequence (including private blocks). */
  get activeBlocks(): number {
    return this.#usedBlocks - this.#inactiveBlocks;
  }

  /** Cached blocks no sequence references, kept for prefix reuse. */
  get inactiveBlocks(): number {
    return this.#inactiveBlocks;
  }

  /** Number of cached blocks (active or inactive). */
  get cachedBlocks(): number {
    return this.#cache.size;
  }

  /** Blocks that could be handed out now: never used, or evictable. */
  get availableBlocks(): number {
    return this.totalBlocks - this.#usedBlocks + this.#inactiveBlocks;
  }

  /** The refcount of a cached block (0 = inactive), or undefined when not cached. */
  refCountOf(hash: bigint): number | undefined {
    return this.#cache.get(hash)?.refCount;
  }

  /** How many leading full blocks of `source` (at most `maxBlocks`) are in the prefix cache. */
  cachedPrefixBlocks(source: KvBlockSource, maxBlocks: number): number {
    if (!this.prefixCachingEnabled) return 0;
    let n = 0;
    while (n < maxBlocks && this.#cache.has(source.sequenceHash(n))) n++;
    return n;
  }

  /**
   * Grows `table` (a sequence's blocks) to `targetBlocks`, the first `fullBlocks` of which
   * are full. Reuses cached blocks (Use), promotes a private tail block that became full,
   * evicts LRU inactive blocks when out of room (Removed) and records newly cached blocks
   * as one Stored event per contiguous run. All or nothing: returns false, changing
   * nothing, when the capacity is not there.
   */
  grow(
    table: KvBlock[],
    targetBlocks: number,
    fullBlocks: number,
    source: KvBlockSource,
  ): boolean {
    const held = table.length;
    const caching = this.prefixCachingEnabled;
    const promoteIndex = caching && held > 0 && held - 1 < fullBlocks &&
        table[held - 1] === PRIVATE_BLOCK
      ? held - 1
      : -1;
    // Most decode passes neither cross a block boundary nor fill a block: nothing to do.
    if (targetBlocks <= held && promoteIndex < 0) return true;
    const scratch = this.#scratch;
    scratch.length = 0;
    let fresh = 0;
    let reactivated = 0;
    for (let i = held; i < targetBlocks; i++) {
      const block = caching && i < fullBlocks ? this.#cache.get(source.sequenceHash(i)) : undefined;
      scratch.push(block);
      if (block === undefined) fresh++;
      else if (block.refCount === 0) reactivated++;
    }
    const promoteTo = promoteIndex < 0
      ? undefined
      : this.#cache.get(source.sequenceHash(promoteIndex));
    if (promoteTo !== undefined && promoteTo.refCount === 0) reactivated++;
    const freedByPromotion = promoteTo === undefined ? 0 : 1;
    if (fresh > this.availableBlocks - reactivated + freedByPromotion) {
      scratch.length = 0;
      return false;
    }

    const stored = this.#storedScratch;
    stored.length = 0;
    if (promoteIndex >= 0) {
      if (promoteTo !== undefined) {
        this.#acquire(promoteTo);
        this.#usedBlocks--;
        table[promoteIndex] = promoteTo;
      } else {
        this.#usedBlocks--; // the private slot becomes the cached block
        table[promoteIndex] = this.#insert(source.sequenceHash(promoteIndex));
        stored.push(promoteIndex);
      }
    }
    for (const block of scratch) if (block !== undefined) this.#acquire(block);
    let removed: bigint[] | undefined;
    for (let k = 0; k < scratch.length; k++) {
      const existing = scratch[k];
      if (existing !== undefined) {
        table.push(existing);
        continue;
      }
      if (this.#usedBlocks >= this.totalBlocks) (removed ??= []).push(this.#evictLru());
      const index = held + k;
      if (caching && index < fullBlocks) {
        table.push(this.#insert(source.sequenceHash(index)));
        stored.push(index);
      } else {
        table.push(PRIVATE_BLOCK);
        this.#usedBlocks++;
      }
    }
    scratch.length = 0;
    if (removed !== undefined) this.#emitRemoved(removed);
    if (stored.length > 0) this.#emitStoredRuns(stored, source);
    return true;
  }

  /** Deref: releases a sequence's blocks tail first, so deeper blocks are evicted first. */
  release(table: KvBlock[]): void {
    for (let i = table.length - 1; i >= 0; i--) {
      const block = table[i]!;
      if (block === PRIVATE_BLOCK) {
        this.#usedBlocks--;
        continue;
      }
      block.refCount--;
      if (block.refCount > 0) continue;
      if (block.cached) this.#pushLru(block);
      else this.#usedBlocks--;
    }
    table.length = 0;
  }

  /**
   * Destroy (preemption): releases a sequence's blocks tail first and drops from the cache
   * (emitting one Removed event) every block no other sequence still references.
   */
  destroy(table: KvBlock[]): void {
    let removed: bigint[] | undefined;
    for (let i = table.length - 1; i >= 0; i--) {
      const block = table[i]!;
      if (block === PRIVATE_BLOCK) {
        this.#usedBlocks--;
        continue;
      }
      block.refCount--;
      if (block.refCount > 0) continue;
      this.#usedBlocks--;
      if (!block.cached) continue;
      block.cached = false;
      this.#cache.delete(block.hash);
      (removed ??= []).push(block.hash);
    }
    table.length = 0;
    if (removed !== undefined) this.#emitRemoved(removed);
  }

  /**
   * Empties the prefix cache and emits "cleared": inactive blocks are freed; blocks still
   * in use stay allocated to their sequences but are no longer shared or reported.
   */
  clear(): void {
    for (let b = this.#lruHead; b !== null;) {
      const next = b.next;
      b.prev = b.next = null;
      b.cached = false;
      this.#usedBlocks--;
      b = next;
    }
    this.#lruHead = this.#lruTail = null;
    this.#inactiveBlocks = 0;
    for (const block of this.#cache.values()) block.cached = false;
    this.#cache.clear();
    this.#emit("cleared");
  }

  /** Returns the events recorded since the last call, oldest first. */
  drainEvents(): KvCacheEvent[] {
    const events = this.#events;
    if (events.length === 0) return events;
    this.#events = [];
    return events;
  }

  /** The inactive pool's hashes from least to most recently used (for tests and dumps). */
  lruOrder(): bigint[] {
    const out: bigint[] = [];
    for (let b = this.#lruHead; b !== null; b = b.next) out.push(b.hash);
    return out;
  }

  /** Throws if the pool's bookkeeping is inconsistent; for tests. */
  checkInvariants(): void {
    let inactive = 0;
    let stamp = -1;
    for (let b = this.#lruHead; b !== null; b = b.next) {
      if (b.refCount !== 0 || !b.cached || b.lruStamp <= stamp) {
        throw new Error(`KV manager invariant broken: bad LRU entry ${b.hash}`);
      }
      stamp = b.lruStamp;
      inactive++;
    }
    if (inactive !== this.#inactiveBlocks) {
      throw new Error("KV manager invariant broken: inactive count");
    }
    if (this.#usedBlocks > this.totalBlocks || this.#usedBlocks < this.#cache.size) {
      throw new Error(
        `KV manager invariant broken: used ${this.#usedBlocks} of ${this.totalBlocks}`,
      );
    }
  }

  #acquire(block: KvBlock): void {
    if (block.refCount === 0) this.#unlinkLru(block);
    block.refCount++;
  }

  #insert(hash: bigint): KvBlock {
    const block = new KvBlock(hash);
    block.refCount = 1;
    this.#cache.set(hash, block);
    this.#usedBlocks++;
    return block;
  }

  #evictLru(): bigint {
    const victim = this.#lruHead;
    if (victim === null) throw new Error("KV manager invariant broken: nothing to evict");
    this.#unlinkLru(victim);
    victim.cached = false;
    this.#cache.delete(victim.hash);
    this.#usedBlocks--;
    return victim.hash;
  }

  #pushLru(block: KvBlock): void {
    block.lruStamp = ++this.#lruCounter;
    block.prev = this.#lruTail;
    block.next = null;
    if (this.#lruTail === null) this.#lruHead = block;
    else this.#lruTail.next = block;
    this.#lruTail = block;
    this.#inactiveBlocks++;
  }

  #unlinkLru(block: KvBlock): void {
    if (block.prev === null) this.#lruHead = block.next;
    else block.prev.next = block.next;
    if (block.next === null) this.#lruTail = block.prev;
    else block.next.prev = block.prev;
    block.prev = block.next = null;
    this.#inactiveBlocks--;
  }

  #emitStoredRuns(indices: readonly number[], source: KvBlockSource): void {
    let start = 0;
    while (start < indices.length) {
      let end = start + 1;
      while (end < indices.length && indices[end] === indices[end - 1]! + 1) end++;
      const first = indices[start]!;
      const blocks: KvStoredBlock[] = new Array(end - start);
      for (let k = start; k < end; k++) {
        const i = indices[k]!;
        blocks[k - start] = this.#emitTokenIds
          ? {
            block_hash: source.sequenceHash(i),
            tokens_hash: source.localHash(i),
            token_ids: source.blockTokenIds(i),
          }
          : { block_hash: source.sequenceHash(i), tokens_hash: source.localHash(i) };
      }
      const parent_hash = first === 0 ? null : source.sequenceHash(first - 1);
      this.#emit({ stored: { parent_hash, blocks } });
      start = end;
    }
  }

  #emitRemoved(blockHashes: bigint[]): void {
    this.#emit({ removed: { block_hashes: blockHashes } });
  }

  #emit(data: KvCacheEvent["data"]): void {
    this.#events.push({ event_id: this.#nextEventId++, data, dp_rank: this.#dpRank });
  }
}
