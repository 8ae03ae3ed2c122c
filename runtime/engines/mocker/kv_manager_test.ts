import assert from "node:assert/strict";
import type { KvCacheEvent } from "../../protocol/mod.ts";
import { type KvBlock, type KvBlockSource, KvManager, PRIVATE_BLOCK } from "./kv_manager.ts";

/** A sequence whose block i has sequence hash hashes[i]. */
class FakeSequence implements KvBlockSource {
  readonly blocks: KvBlock[] = [];
  constructor(readonly hashes: bigint[]) {}
  sequenceHash(i: number): bigint {
    return this.hashes[i]!;
  }
  localHash(i: number): bigint {
    return this.hashes[i]! + 1000n;
  }
  blockTokenIds(i: number): number[] {
    return [Number(this.hashes[i]!)];
  }
}

function manager(numGpuBlocks: number, enablePrefixCaching = true): KvManager {
  return new KvManager({ numGpuBlocks, enablePrefixCaching });
}

/** Grows `seq` to hold all of its blocks as full blocks. */
function useAll(kv: KvManager, seq: FakeSequence): boolean {
  return kv.grow(seq.blocks, seq.hashes.length, seq.hashes.length, seq);
}

function stored(event: KvCacheEvent): { parent: bigint | null; hashes: bigint[] } {
  assert.ok(
    typeof event.data === "object" && "stored" in event.data,
    JSON.stringify(event.data, (_, v) => String(v)),
  );
  const s = event.data.stored;
  return { parent: s.parent_hash, hashes: s.blocks.map((b) => b.block_hash) };
}

function removed(event: KvCacheEvent): bigint[] {
  assert.ok(typeof event.data === "object" && "removed" in event.data);
  return [...event.data.removed.block_hashes];
}

Deno.test("KvManager.grow() reuses cached prefix blocks and counts references", () => {
  const kv = manager(10);
  const a = new FakeSequence([1n, 2n, 3n]);
  const b = new FakeSequence([1n, 2n, 9n]);
  assert.ok(useAll(kv, a));
  assert.ok(useAll(kv, b));
  const events = kv.drainEvents();
  assert.equal(events.length, 2);
  assert.deepEqual(stored(events[0]!), { parent: null, hashes: [1n, 2n, 3n] });
  assert.deepEqual(stored(events[1]!), { parent: 2n, hashes: [9n] });
  assert.equal(kv.refCountOf(1n), 2);
  assert.equal(kv.refCountOf(3n), 1);
  assert.equal(kv.usedBlocks, 4);
  kv.release(a.blocks);
  assert.equal(kv.refCountOf(1n), 1);
  assert.equal(kv.refCountOf(3n), 0);
  assert.equal(kv.activeBlocks, 3);
  assert.equal(kv.inactiveBlocks, 1);
  assert.equal(kv.cachedPrefixBlocks(new FakeSequence([1n, 2n, 3n, 4n]), 4), 3);
  kv.checkInvariants();
});

Deno.test("KvManager.grow() carries tokens_hash and token_ids in Stored blocks", () => {
  const kv = manager(4);
  assert.ok(useAll(kv, new FakeSequence([5n])));
  const [event] = kv.drainEvents();
  assert.ok(typeof event!.data === "object" && "stored" in event!.data);
  assert.deepEqual(event!.data.stored.blocks[0], {
    block_hash: 5n,
    tokens_hash: 1005n,
    token_ids: [5],
  });
  assert.equal(event!.event_id, 0);
  assert.equal(event!.dp_rank, 0);
});

Deno.test("KvManager.release() frees blocks tail first", () => {
  const kv = manager(10);
  const a = new FakeSequence([1n, 2n, 3n]);
  useAll(kv, a);
  kv.release(a.blocks);
  assert.deepEqual(kv.lruOrder(), [3n, 2n, 1n]);
  assert.equal(a.blocks.length, 0);
});

Deno.test("KvManager.grow() evicts the least recently used inactive block and emits Removed", () => {
  const kv = manager(4);
  const a = new FakeSequence([1n, 2n]);
  const b = new FakeSequence([3n, 4n]);
  useAll(kv, a);
  kv.release(a.blocks); // LRU: 2, 1
  useAll(kv, b);
  kv.release(b.blocks); // LRU: 2, 1, 4, 3
  kv.drainEvents();
  const c = new FakeSequence([5n]);
  assert.ok(useAll(kv, c));
  const events = kv.drainEvents();
  assert.deepEqual(removed(events[0]!), [2n]);
  assert.deepEqual(stored(events[1]!), { parent: null, hashes: [5n] });
  assert.deepEqual(kv.lruOrder(), [1n, 4n, 3n]);
  assert.equal(kv.refCountOf(2n), undefined);
  kv.checkInvariants();
});

Deno.test("KvManager.grow() reactivates an inactive block instead of evicting it", () => {
  const kv = manager(3);
  const a = new FakeSequence([1n, 2n]);
  useAll(kv, a);
  kv.release(a.blocks); // LRU: 2, 1
  kv.drainEvents();
  const b = new FakeSequence([1n, 7n, 8n]);
  assert.ok(useAll(kv, b)); // 1 reused; 2 evicted for 7; then one free slot for 8
  const events = kv.drainEvents();
  assert.deepEqual(removed(events[0]!), [2n]);
  assert.deepEqual(stored(events[1]!), { parent: 1n, hashes: [7n, 8n] });
  assert.equal(kv.refCountOf(1n), 1);
});

Deno.test("KvManager.grow() emits one Stored event per allocation whose parent precedes it", () => {
  const kv = manager(10);
  const seq = new FakeSequence([11n, 12n, 13n, 14n]);
  kv.grow(seq.blocks, 2, 2, seq);
  kv.grow(seq.blocks, 4, 4, seq);
  const events = kv.drainEvents();
  assert.equal(events.length, 2);
  assert.deepEqual(stored(events[0]!), { parent: null, hashes: [11n, 12n] });
  assert.deepEqual(stored(events[1]!), { parent: 12n, hashes: [13n, 14n] });
  assert.deepEqual(events.map((e) => e.event_id), [0, 1]);
});

Deno.test("KvManager.grow() promotes a partial block once it is full", () => {
  const kv = manager(10);
  const seq = new FakeSequence([21n, 22n]);
  assert.ok(kv.grow(seq.blocks, 2, 1, seq)); // block 1 is partial
  assert.equal(seq.blocks[1], PRIVATE_BLOCK);
  assert.equal(kv.usedBlocks, 2);
  assert.deepEqual(stored(kv.drainEvents()[0]!), { parent: null, hashes: [21n] });
  assert.ok(kv.grow(seq.blocks, 2, 2, seq)); // it fills up
  assert.deepEqual(stored(kv.drainEvents()[0]!), { parent: 21n, hashes: [22n] });
  assert.equal(kv.usedBlocks, 2);
  assert.equal(kv.refCountOf(22n), 1);
  kv.checkInvariants();
});

Deno.test("KvManager.grow() fails without side effects when capacity is short", () => {
  const kv = manager(3);
  const a = new FakeSequence([1n, 2n]);
  useAll(kv, a);
  kv.drainEvents();
  const b = new FakeSequence([4n, 5n]);
  assert.equal(useAll(kv, b), false);
  assert.equal(b.blocks.length, 0);
  assert.equal(kv.usedBlocks, 2);
  assert.deepEqual(kv.drainEvents(), []);
});

Deno.test("KvManager.destroy() emits Removed for the blocks no other sequence holds", () => {
  const kv = manager(10);
  const a = new FakeSequence([1n, 2n]);
  const b = new FakeSequence([1n, 3n]);
  useAll(kv, a);
  useAll(kv, b);
  kv.drainEvents();
  kv.destroy(b.blocks);
  assert.deepEqual(removed(kv.drainEvents()[0]!), [3n]);
  assert.equal(kv.refCountOf(1n), 1);
  assert.equal(kv.refCountOf(3n), undefined);
  assert.equal(kv.usedBlocks, 2);
  kv.checkInvariants();
});

Deno.test("KvManager.clear() empties the cache and emits cleared", () => {
  const kv = manager(10);
  const a = new FakeSequence([1n, 2n]);
  const b = new FakeSequence([3n]);
  useAll(kv, a);
  useAll(kv, b);
  kv.release(a.blocks);
  kv.clear();
  const events = kv.drainEvents();
  assert.equal(events[events.length - 1]!.data, "cleared");
  assert.equal(kv.cachedBlocks, 0);
  assert.equal(kv.usedBlocks, 1); // b still holds its block
  kv.release(b.blocks);
  assert.equal(kv.usedBlocks, 0);
  assert.deepEqual(kv.drainEvents(), []);
  kv.checkInvariants();
});

Deno.test("KvManager without prefix caching keeps blocks private and silent", () => {
  const kv = manager(4, false);
  const a = new FakeSequence([1n, 2n]);
  assert.ok(useAll(kv, a));
  assert.deepEqual(a.blocks, [PRIVATE_BLOCK, PRIVATE_BLOCK]);
  assert.equal(kv.cachedPrefixBlocks(a, 2), 0);
  kv.release(a.blocks);
  assert.equal(kv.usedBlocks, 0);
  assert.deepEqual(kv.drainEvents(), []);
});
