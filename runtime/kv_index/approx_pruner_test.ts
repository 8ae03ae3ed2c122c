import assert from "node:assert/strict";
import { BlockHasher } from "../tokens/mod.ts";
import { ApproxPruner } from "./approx_pruner.ts";
import { KvIndex } from "./kv_index.ts";

const BLOCK_SIZE_TOKENS = 4;
const hasher = new BlockHasher();

/** A prompt of `blocks` full blocks whose tokens start at `seed`; its local and sequence hashes. */
function prompt(seed: number, blocks: number): { local: bigint[]; seq: bigint[] } {
  const tokens = Array.from({ length: blocks * BLOCK_SIZE_TOKENS }, (_, i) => seed + i);
  const local = hasher.localHashes(tokens, BLOCK_SIZE_TOKENS);
  return { local, seq: hasher.sequenceHashes(local) };
}

function scores(index: KvIndex, local: bigint[]): Record<number, number> {
  const result = index.findMatches(local);
  const out: Record<number, number> = {};
  for (let i = 0; i < result.count; i++) out[result.workers[i]!] = result.depths[i]!;
  return out;
}

Deno.test("ApproxPruner.recordRouting() stores the prompt as a chain keyed by sequence hashes", () => {
  const index = new KvIndex();
  const pruner = new ApproxPruner(index, { ttlMs: 1000 });
  const p = prompt(1, 5);
  assert.equal(pruner.recordRouting(3, p.local, p.seq, 0), "ok");
  assert.deepEqual(scores(index, p.local), { 3: 5 });
  assert.equal(index.workerTreeSize(3), 5);
  assert.equal(pruner.trackedBlocks, 5);
  // The block hashes are the sequence hashes: a Removed event by sequence hash applies.
  assert.equal(index.applyRemoved(3, [p.seq[4]!]), "ok");
  assert.deepEqual(scores(index, p.local), { 3: 4 });
});

Deno.test("ApproxPruner.prune() removes blocks whose TTL has passed", () => {
  const index = new KvIndex();
  const pruner = new ApproxPruner(index, { ttlMs: 1000 });
  const a = prompt(1, 3);
  const b = prompt(100, 2);
  pruner.recordRouting(0, a.local, a.seq, 0);
  pruner.recordRouting(1, b.local, b.seq, 500);
  assert.equal(pruner.nextExpiryMs(), 1000);
  assert.deepEqual(pruner.prune(999), { expiredBlocks: 0, prunedBlocks: 0 });
  assert.deepEqual(scores(index, a.local), { 0: 3 });
  assert.deepEqual(pruner.prune(1000), { expiredBlocks: 3, prunedBlocks: 0 });
  assert.deepEqual(scores(index, a.local), {});
  assert.deepEqual(scores(index, b.local), { 1: 2 });
  assert.equal(index.sizeBlocks, 2);
  assert.equal(pruner.nextExpiryMs(), 1500);
  assert.deepEqual(pruner.prune(10_000), { expiredBlocks: 2, prunedBlocks: 0 });
  assert.equal(index.sizeBlocks, 0);
  assert.equal(pruner.trackedBlocks, 0);
  assert.equal(pruner.nextExpiryMs(), null);
});

Deno.test("ApproxPruner.recordRouting() refreshes the expiry of blocks routed again", () => {
  const index = new KvIndex();
  const pruner = new ApproxPruner(index, { ttlMs: 1000 });
  const p = prompt(1, 3);
  pruner.recordRouting(0, p.local, p.seq, 0);
  // The same first two blocks are routed to the same worker later: only block 3 expires.
  pruner.recordRouting(0, p.local.slice(0, 2), p.seq.slice(0, 2), 600);
  assert.equal(pruner.trackedBlocks, 3);
  assert.equal(pruner.nextExpiryMs(), 1000);
  assert.deepEqual(pruner.prune(1000), { expiredBlocks: 1, prunedBlocks: 0 });
  assert.deepEqual(scores(index, p.local), { 0: 2 });
  assert.equal(pruner.nextExpiryMs(), 1600);
  assert.deepEqual(pruner.prune(1600), { expiredBlocks: 2, prunedBlocks: 0 });
  assert.equal(index.sizeBlocks, 0);
});

Deno.test("ApproxPruner.prune() prunes by size in expiry order, deeper blocks first", () => {
  const index = new KvIndex();
  const pruner = new ApproxPruner(index, {
    ttlMs: 60_000,
    maxTreeSizeBlocks: 10,
    pruneTargetRatio: 0.8,
  });
  const a = prompt(1, 6);
  const b = prompt(100, 6);
  pruner.recordRouting(0, a.local, a.seq, 0);
  assert.deepEqual(pruner.prune(1), { expiredBlocks: 0, prunedBlocks: 0 });
  pruner.recordRouting(1, b.local, b.seq, 1);
  // 12 entries > 10: prune to 8, oldest first; within worker 0's prompt, deepest first.
  assert.deepEqual(pruner.prune(2), { expiredBlocks: 0, prunedBlocks: 4 });
  assert.equal(pruner.trackedBlocks, 8);
  assert.deepEqual(scores(index, a.local), { 0: 2 });
  assert.deepEqual(scores(index, b.local), { 1: 6 });
  assert.equal(index.sizeBlocks, 8);
});

Deno.test("ApproxPruner.prune() removes equally old blocks of several workers deepest first", () => {
  const index = new KvIndex();
  const pruner = new ApproxPruner(index, { maxTreeSizeBlocks: 10, pruneTargetRatio: 0.8 });
  const a = prompt(1, 6);
  const b = prompt(100, 6);
  pruner.recordRouting(0, a.local, a.seq, 0);
  pruner.recordRouting(1, b.local, b.seq, 0);
  assert.deepEqual(pruner.prune(0), { expiredBlocks: 0, prunedBlocks: 4 });
  assert.deepEqual(scores(index, a.local), { 0: 4 });
  assert.deepEqual(scores(index, b.local), { 1: 4 });
});

Deno.test("ApproxPruner.removeWorker() removes the worker from the index and forgets its timers", () => {
  const index = new KvIndex();
  const pruner = new ApproxPruner(index, { ttlMs: 1000 });
  const a = prompt(1, 3);
  const b = prompt(100, 2);
  pruner.recordRouting(0, a.local, a.seq, 0);
  pruner.recordRouting(1, b.local, b.seq, 0);
  pruner.removeWorker(0);
  assert.equal(pruner.trackedBlocks, 2);
  assert.deepEqual(index.workers(), [1]);
  assert.deepEqual(scores(index, a.local), {});
  assert.deepEqual(pruner.prune(5000), { expiredBlocks: 2, prunedBlocks: 0 });
});

Deno.test("ApproxPruner.prune() skips the stale timers left by repeated refreshes", () => {
  const index = new KvIndex();
  const pruner = new ApproxPruner(index, { ttlMs: 1000 });
  const p = prompt(1, 8);
  for (let t = 0; t < 5000; t++) pruner.recordRouting(0, p.local, p.seq, t);
  assert.equal(pruner.trackedBlocks, 8);
  assert.equal(pruner.nextExpiryMs(), 5999);
  assert.deepEqual(pruner.prune(5998), { expiredBlocks: 0, prunedBlocks: 0 });
  assert.deepEqual(pruner.prune(5999), { expiredBlocks: 8, prunedBlocks: 0 });
  assert.equal(index.sizeBlocks, 0);
});

Deno.test("ApproxPruner validates its options and inputs", () => {
  const index = new KvIndex();
  assert.throws(() => new ApproxPruner(index, { ttlMs: 0 }), RangeError);
  assert.throws(() => new ApproxPruner(index, { maxTreeSizeBlocks: -1 }), RangeError);
  assert.throws(() => new ApproxPruner(index, { pruneTargetRatio: 1.5 }), RangeError);
  const pruner = new ApproxPruner(index);
  assert.throws(() => pruner.recordRouting(0, [1n], [], 0), RangeError);
  assert.throws(() => pruner.recordRouting(0, [1n], [1n], Number.NaN), RangeError);
});
