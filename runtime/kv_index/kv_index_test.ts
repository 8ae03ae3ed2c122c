import assert from "node:assert/strict";
import { KvIndex, type OverlapBuffer, type StoredBlockInput } from "./kv_index.ts";

/** Block with tokens hash `t` and, by default, engine block hash `t * 100`. */
function blk(t: number, blockHash: bigint = BigInt(t) * 100n): StoredBlockInput {
  return { blockHash, tokensHash: BigInt(t) };
}

function chain(...tokens: number[]): StoredBlockInput[] {
  return tokens.map((t) => blk(t));
}

function q(...tokens: number[]): bigint[] {
  return tokens.map(BigInt);
}

/** Worker → depth (or → tree size) of a findMatches() answer, as a plain object. */
function scoresOf(
  result: OverlapBuffer,
  of: "depths" | "treeSizes" = "depths",
): Record<number, number> {
  const rows: [number, number][] = [];
  for (let i = 0; i < result.count; i++) rows.push([result.workers[i]!, result[of][i]!]);
  return Object.fromEntries(rows.sort((x, y) => x[0] - y[0]));
}

Deno.test("KvIndex.findMatches() stops at the first missing block", () => {
  const index = new KvIndex();
  assert.equal(index.applyStored(0, null, chain(1, 2, 3)), "ok");
  assert.deepEqual(scoresOf(index.findMatches(q(1, 2, 3))), { 0: 3 });
  assert.deepEqual(scoresOf(index.findMatches(q(1, 2, 9, 3))), { 0: 2 });
  assert.deepEqual(scoresOf(index.findMatches(q(2, 3))), {});
  assert.deepEqual(scoresOf(index.findMatches([])), {});
  assert.equal(index.sizeBlocks, 3);
});

Deno.test("KvIndex.findMatches() accepts a BigUint64Array and full 64-bit hashes", () => {
  const index = new KvIndex();
  const big = [2n ** 64n - 1n, 2n ** 63n, 0x1234_5678_9abc_def0n];
  index.applyStored(3, null, big.map((t, i) => ({ blockHash: BigInt(i + 1), tokensHash: t })));
  assert.deepEqual(scoresOf(index.findMatches(BigUint64Array.from(big))), { 3: 3 });
  assert.deepEqual(scoresOf(index.findMatches(big)), { 3: 3 });
  // Same low half, different high half: not a match.
  assert.deepEqual(scoresOf(index.findMatches([2n ** 64n - 1n, 0n])), { 3: 1 });
});

Deno.test("KvIndex.findMatches() walks long prompts given as bigints or a BigUint64Array", () => {
  const index = new KvIndex();
  const tokens = Array.from({ length: 150 }, (_, i) => i + 1);
  // Worker 0 holds all 150 blocks, worker 1 the first 120, workers 2-5 the first 40:
  // the walk runs with a bitset, then a short list, then one worker.
  index.applyStored(0, null, chain(...tokens));
  index.applyStored(1, null, chain(...tokens.slice(0, 120)));
  for (const w of [2, 3, 4, 5]) index.applyStored(w, null, chain(...tokens.slice(0, 40)));
  for (const stop of [1, 15, 16, 17, 33, 39, 40, 64, 119, 120, 121, 149, 150]) {
    const query = q(...tokens.slice(0, stop), 9999, ...tokens.slice(stop + 1));
    const expected: Record<number, number> = { 0: stop, 1: Math.min(stop, 120) };
    for (const w of [2, 3, 4, 5]) expected[w] = Math.min(stop, 40);
    assert.deepEqual(scoresOf(index.findMatches(query)), expected, `bigint[], stop ${stop}`);
    assert.deepEqual(
      scoresOf(index.findMatches(BigUint64Array.from(query))),
      expected,
      `BigUint64Array, stop ${stop}`,
    );
  }
});

Deno.test("KvIndex.applyStored() rejects the whole event when the parent block is unknown", () => {
  const index = new KvIndex();
  index.applyStored(0, null, chain(1));
  assert.equal(index.applyStored(0, 12345n, chain(2, 3)), "parent_block_not_found");
  assert.equal(index.sizeBlocks, 1);
  assert.equal(index.workerTreeSize(0), 1);
  // Another worker's block is not this worker's parent.
  assert.equal(index.applyStored(1, 100n, chain(2)), "parent_block_not_found");
  assert.equal(index.sizeBlocks, 1);
  assert.deepEqual(index.workers(), [0, 1]);
  assert.equal(index.applyStored(0, 100n, chain(2, 3)), "ok");
  assert.deepEqual(scoresOf(index.findMatches(q(1, 2, 3))), { 0: 3 });
});

Deno.test("KvIndex.applyRemoved() does not cascade to descendants", () => {
  const index = new KvIndex();
  index.applyStored(0, null, chain(1, 2, 3));
  index.applyStored(1, null, chain(1, 2, 3));
  assert.equal(index.applyRemoved(0, [200n]), "ok");
  assert.deepEqual(scoresOf(index.findMatches(q(1, 2, 3))), { 0: 1, 1: 3 });
  assert.equal(index.workerTreeSize(0), 2);
  // Block 3 still lists worker 0, so restoring block 2 brings the full depth back.
  assert.equal(index.applyStored(0, 100n, chain(2)), "ok");
  assert.deepEqual(scoresOf(index.findMatches(q(1, 2, 3))), { 0: 3, 1: 3 });
});

Deno.test("KvIndex.applyRemoved() drops the children of a block left with no workers", () => {
  const index = new KvIndex();
  index.applyStored(0, null, chain(1, 2, 3));
  assert.equal(index.applyRemoved(0, [100n]), "ok");
  assert.deepEqual(scoresOf(index.findMatches(q(1, 2, 3))), {});
  // Blocks 2 and 3 stay in worker 0's lookup (detached), as upstream.
  assert.equal(index.workerTreeSize(0), 2);
  assert.equal(index.sizeBlocks, 2);
  // A new block 1 from another worker has no children.
  index.applyStored(1, null, chain(1));
  assert.deepEqual(scoresOf(index.findMatches(q(1, 2, 3))), { 1: 1 });
  // Removing the detached blocks frees them.
  assert.equal(index.applyRemoved(0, [300n, 200n]), "ok");
  assert.equal(index.sizeBlocks, 1);
});

Deno.test("KvIndex.applyStored() reuses the worker's node for a block hash when the tokens-hash child is missing", () => {
  const index = new KvIndex();
  index.applyStored(0, null, chain(1, 2, 3));
  index.applyRemoved(0, [100n]); // block 1 emptied: blocks 2-3 detached, still in the lookup
  assert.equal(index.applyStored(0, null, chain(1)), "ok");
  assert.deepEqual(scoresOf(index.findMatches(q(1, 2, 3))), { 0: 1 });
  // Storing block 2 under block 1 reattaches the old node 2, which still has child 3.
  assert.equal(index.applyStored(0, 100n, chain(2)), "ok");
  assert.deepEqual(scoresOf(index.findMatches(q(1, 2, 3))), { 0: 3 });
  assert.equal(index.sizeBlocks, 3);
  assert.equal(index.workerTreeSize(0), 3);
});

Deno.test("KvIndex.applyStored() rejects a block that references itself with invalid_block", () => {
  const index = new KvIndex();
  index.applyStored(0, null, chain(1));
  // Parent is block 1 (hash 100) and the first block is block 1 again: self-reference.
  assert.equal(index.applyStored(0, 100n, chain(1, 2, 3)), "invalid_block");
  assert.equal(index.sizeBlocks, 1);
  assert.deepEqual(scoresOf(index.findMatches(q(1, 1, 2))), { 0: 1 });
});

Deno.test("KvIndex.applyStored() rejects a block that would make a cycle with invalid_block", () => {
  const index = new KvIndex();
  index.applyStored(0, null, chain(1, 2));
  // Under block 2, a block whose hash is block 1's (an ancestor) and whose tokens differ.
  assert.equal(index.applyStored(0, 200n, [blk(7, 100n)]), "invalid_block");
  assert.equal(index.sizeBlocks, 2);
  assert.deepEqual(scoresOf(index.findMatches(q(1, 2, 7))), { 0: 2 });
});

Deno.test("KvIndex.applyRemoved() applies the rest of the batch after an unknown hash", () => {
  const index = new KvIndex();
  index.applyStored(0, null, chain(1, 2, 3));
  assert.equal(index.applyRemoved(0, [999n, 300n, 998n]), "block_not_found");
  assert.equal(index.workerTreeSize(0), 2);
  assert.deepEqual(scoresOf(index.findMatches(q(1, 2, 3))), { 0: 2 });
  assert.equal(index.sizeBlocks, 2);
});

Deno.test("KvIndex.applyCleared() keeps the worker's lookup entry but it scores 0", () => {
  const index = new KvIndex();
  index.applyStored(0, null, chain(1, 2));
  index.applyStored(1, null, chain(1, 2, 3));
  index.applyCleared(0);
  assert.deepEqual(index.workers(), [0, 1]);
  assert.equal(index.workerTreeSize(0), 0);
  assert.deepEqual(scoresOf(index.findMatches(q(1, 2, 3))), { 1: 3 });
  assert.equal(index.sizeBlocks, 3);
  index.applyCleared(1);
  assert.equal(index.sizeBlocks, 0);
  assert.deepEqual(index.workers(), [0, 1]);
  assert.equal(index.applyStored(0, null, chain(1)), "ok");
  assert.deepEqual(scoresOf(index.findMatches(q(1, 2))), { 0: 1 });
});

Deno.test("KvIndex.removeWorker() forgets the worker and frees its blocks", () => {
  const index = new KvIndex();
  index.applyStored(4, null, chain(1, 2, 3));
  index.applyStored(5, null, chain(1, 9));
  index.removeWorker(4);
  assert.deepEqual(index.workers(), [5]);
  assert.equal(index.workerTreeSize(4), 0);
  assert.equal(index.sizeBlocks, 2);
  assert.deepEqual(scoresOf(index.findMatches(q(1, 2, 3))), { 5: 1 });
  index.removeWorker(4); // unknown now: no-op
  index.removeWorker(5);
  assert.equal(index.sizeBlocks, 0);
  assert.deepEqual(index.workers(), []);
});

Deno.test("KvIndex.applyStored() returns tree_full instead of growing past maxTreeSizeBlocks", () => {
  const index = new KvIndex({ maxTreeSizeBlocks: 4 });
  assert.equal(index.applyStored(0, null, chain(1, 2, 3)), "ok");
  assert.equal(index.applyStored(0, null, chain(4, 5)), "tree_full");
  assert.equal(index.sizeBlocks, 3);
  assert.equal(index.workerTreeSize(0), 3);
  assert.deepEqual(scoresOf(index.findMatches(q(4))), {});
  // Existing blocks cost nothing: another worker may store the same chain plus one block.
  assert.equal(index.applyStored(1, null, chain(1, 2, 3, 4)), "ok");
  assert.equal(index.sizeBlocks, 4);
  assert.equal(index.applyStored(1, 400n, chain(5)), "tree_full");
  index.applyRemoved(1, [400n]);
  assert.equal(index.applyStored(1, 300n, chain(5)), "ok");
  assert.equal(index.sizeBlocks, 4);
});

Deno.test("KvIndex.findMatches() gives each worker the depth at which it drops out", () => {
  const index = new KvIndex();
  // Seven workers (more than fit inline), with keys on both sides of 32-bit word edges.
  const keys = [0, 31, 32, 63, 64, 100, 7];
  keys.forEach((w, i) =>
    index.applyStored(w, null, chain(...[1, 2, 3, 4, 5, 6, 7].slice(0, 7 - i)))
  );
  index.applyStored(9, null, chain(8));
  const result = index.findMatches(q(1, 2, 3, 4, 5, 6, 7, 99));
  assert.deepEqual(scoresOf(result), { 0: 7, 7: 1, 31: 6, 32: 5, 63: 4, 64: 3, 100: 2 });
  assert.deepEqual(scoresOf(index.findMatches(q(1, 2, 3))), {
    0: 3,
    7: 1,
    31: 3,
    32: 3,
    63: 3,
    64: 3,
    100: 2,
  });
});

Deno.test("KvIndex.findMatches() checks membership, not just the count, at each level", () => {
  const index = new KvIndex();
  index.applyStored(2, null, chain(1, 2));
  index.applyStored(0, null, chain(1));
  index.applyStored(1, null, chain(1, 2));
  index.applyRemoved(2, [100n]); // block 1: {0, 1}; block 2 still lists {1, 2}
  // Upstream's count check would let worker 0 through to depth 2.
  assert.deepEqual(scoresOf(index.findMatches(q(1, 2))), { 0: 1, 1: 2 });
});

Deno.test("KvIndex.findMatches() reports tree sizes for the scored workers", () => {
  const index = new KvIndex();
  index.applyStored(0, null, chain(1, 2, 3));
  index.applyStored(1, null, chain(1));
  index.applyStored(1, null, chain(5, 6));
  index.applyStored(2, null, chain(7));
  const result = index.findMatches(q(1, 2));
  assert.deepEqual(scoresOf(result, "treeSizes"), { 0: 3, 1: 3 });
  assert.equal(index.workerTreeSize(2), 1);
});

Deno.test("KvIndex.applyEvent() applies stored, removed and cleared events", () => {
  const index = new KvIndex();
  const stored = {
    stored: {
      parent_hash: null,
      blocks: [{ block_hash: 10n, tokens_hash: 1n }, { block_hash: 20n, tokens_hash: 2n }],
    },
  };
  assert.equal(index.applyEvent(0, stored), "ok");
  assert.deepEqual(scoresOf(index.findMatches(q(1, 2))), { 0: 2 });
  assert.equal(index.applyEvent(0, { removed: { block_hashes: [20n, 30n] } }), "block_not_found");
  assert.deepEqual(scoresOf(index.findMatches(q(1, 2))), { 0: 1 });
  assert.equal(index.applyEvent(0, "cleared"), "ok");
  assert.deepEqual(scoresOf(index.findMatches(q(1, 2))), {});
  assert.deepEqual(index.workers(), [0]);
});

Deno.test("KvIndex frees nodes left with no workers and no children", () => {
  const index = new KvIndex();
  const tokens = Array.from({ length: 200 }, (_, i) => i + 1);
  index.applyStored(0, null, chain(...tokens));
  let bytesAfterFirstRound = 0;
  for (let round = 1; round <= 50; round++) {
    index.applyStored(1, null, chain(...tokens.map((t) => t + 1000 * round)));
    assert.equal(index.sizeBlocks, 400);
    const hashes = tokens.map((t) => BigInt(t + 1000 * round) * 100n);
    assert.equal(index.applyRemoved(1, round % 2 === 0 ? hashes : hashes.reverse()), "ok");
    assert.equal(index.sizeBlocks, 200);
    if (round === 1) bytesAfterFirstRound = index.memoryBytes;
  }
  assert.equal(index.memoryBytes, bytesAfterFirstRound);
  index.applyRemoved(0, tokens.map((t) => BigInt(t) * 100n));
  assert.equal(index.sizeBlocks, 0);
});

Deno.test("KvIndex frees a detached block whose last lookup entry is overwritten, and releases its children", () => {
  const index = new KvIndex();
  index.applyStored(0, null, chain(1, 2, 3));
  index.applyRemoved(0, [100n]); // blocks 2-3 detached, held by worker 0's lookup
  index.applyStored(1, null, chain(1, 2));
  assert.equal(index.sizeBlocks, 4);
  index.applyStored(0, null, chain(1));
  // Block 2 exists under the new block 1: worker 0's lookup entry moves to it, so the old
  // block 2 is unreferenced and freed; its child 3 survives only through the lookup.
  assert.equal(index.applyStored(0, 100n, chain(2)), "ok");
  assert.equal(index.sizeBlocks, 3);
  assert.deepEqual(scoresOf(index.findMatches(q(1, 2, 3))), { 0: 2, 1: 2 });
  assert.equal(index.applyRemoved(0, [300n]), "ok");
  assert.equal(index.sizeBlocks, 2);
});

Deno.test("KvIndex frees a whole detached subtree once nothing refers to it", () => {
  const index = new KvIndex();
  index.applyStored(0, null, chain(1, 2, 3));
  index.applyRemoved(0, [100n]); // blocks 2-3 detached
  index.applyStored(1, null, chain(5));
  // Worker 0's hash 300 now names block 5 (it exists under the root): block 3 is kept
  // alive only by its parent, the detached block 2.
  index.applyStored(0, null, [blk(5, 300n)]);
  assert.equal(index.sizeBlocks, 3);
  index.applyStored(1, null, chain(1, 2));
  index.applyStored(0, null, chain(1));
  assert.equal(index.sizeBlocks, 5);
  // Hash 200 moves to the new block 2: the old blocks 2 and 3 are both freed.
  index.applyStored(0, 100n, chain(2));
  assert.equal(index.sizeBlocks, 3);
  assert.deepEqual(scoresOf(index.findMatches(q(1, 2, 3))), { 0: 2, 1: 2 });
});

Deno.test("KvIndex validates its options and worker keys", () => {
  assert.throws(() => new KvIndex({ maxTreeSizeBlocks: 0 }), RangeError);
  assert.throws(() => new KvIndex({ maxTreeSizeBlocks: 1.5 }), RangeError);
  const index = new KvIndex({ maxTreeSizeBlocks: 10 });
  assert.equal(index.maxTreeSizeBlocks, 10);
  assert.throws(() => index.applyStored(-1, null, chain(1)), RangeError);
  assert.throws(() => index.applyStored(2 ** 20, null, chain(1)), RangeError);
  assert.throws(() => index.applyRemoved(0.5, []), RangeError);
});
