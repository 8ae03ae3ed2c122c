import assert from "node:assert/strict";
import type { KvStoredBlock } from "../protocol/mod.ts";
import { KvEventBatcher, type KvEventUpdate } from "./kv_event_batcher.ts";

const block = (h: number): KvStoredBlock => ({
  block_hash: BigInt(h),
  tokens_hash: BigInt(h) * 10n,
});
const stored = (parent: number | null, hashes: number[], dpRank = 0): KvEventUpdate => ({
  data: {
    stored: { parent_hash: parent === null ? null : BigInt(parent), blocks: hashes.map(block) },
  },
  dp_rank: dpRank,
});
const removed = (hashes: number[], dpRank = 0): KvEventUpdate => ({
  data: { removed: { block_hashes: hashes.map(BigInt) } },
  dp_rank: dpRank,
});

function batcher(maxBatchBlocks?: number): { b: KvEventBatcher; out: KvEventUpdate[] } {
  const out: KvEventUpdate[] = [];
  return { b: new KvEventBatcher({ emit: (u) => out.push(u), maxBatchBlocks }), out };
}

Deno.test("KvEventBatcher merges chained stores and consecutive removes until flush", () => {
  const { b, out } = batcher();
  b.push(stored(null, [1, 2]));
  b.push(stored(2, [3])); // chains onto 2
  assert.deepEqual(out, []);
  b.push(stored(7, [8])); // does not chain: flushes 1,2,3
  b.push(removed([8]));
  b.push(removed([3]));
  b.flush();
  assert.deepEqual(out, [stored(null, [1, 2, 3]), stored(7, [8]), removed([8, 3])]);
});

Deno.test("KvEventBatcher flushes on a dp rank change, on Cleared and past maxBatchBlocks", () => {
  const { b, out } = batcher(3);
  b.push(stored(null, [1]));
  b.push(stored(1, [2], 1)); // other rank: no merge
  b.push({ data: "cleared", dp_rank: 1 });
  assert.deepEqual(out, [stored(null, [1]), stored(1, [2], 1), { data: "cleared", dp_rank: 1 }]);
  out.length = 0;
  b.push(stored(null, [1, 2]));
  b.push(stored(2, [3, 4])); // 4 pending > 3: flushed at once
  assert.deepEqual(out, [stored(null, [1, 2, 3, 4])]);
});

Deno.test("KvEventBatcher passes a remove on only when its hash's store count reaches 0, per rank", () => {
  const { b, out } = batcher();
  b.push(stored(null, [1]));
  b.flush();
  b.push(stored(null, [1])); // vLLM stored the same content twice
  b.flush();
  b.push(stored(null, [1], 1)); // a different rank: counted apart
  b.flush();
  out.length = 0;
  b.push(removed([1, 99])); // 99 was never seen: passes through
  b.flush();
  assert.deepEqual(out, [removed([99])]);
  b.push(removed([1]));
  b.flush();
  assert.deepEqual(out.at(-1), removed([1]));
  b.push(removed([1], 1));
  b.flush();
  assert.deepEqual(out.at(-1), removed([1], 1));
  assert.equal(b.trackedHashes, 0);
});

Deno.test("KvEventBatcher forgets every count on Cleared", () => {
  const { b, out } = batcher();
  b.push(stored(null, [1]));
  b.push(stored(null, [1]));
  b.push({ data: "cleared", dp_rank: 0 });
  b.push(removed([1]));
  b.flush();
  assert.deepEqual(out.at(-1), removed([1]));
});

Deno.test("KvEventBatcher drops empty events", () => {
  const { b, out } = batcher();
  b.push(stored(null, []));
  b.push(removed([]));
  b.flush();
  assert.deepEqual(out, []);
});
