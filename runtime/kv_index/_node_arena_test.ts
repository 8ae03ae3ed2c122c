import assert from "node:assert/strict";
import fc from "fast-check";
import {
  H_LINK,
  HOT_STRIDE,
  INLINE_WORKERS,
  LINK_CHAINED,
  LINK_NO_SOLE,
  NodeArena,
  NONE,
  ROOT,
} from "./_node_arena.ts";

function link(arena: NodeArena, n: number): number {
  return arena.hot[n * HOT_STRIDE + H_LINK]!;
}

Deno.test("NodeArena.alloc() hands out ids next-fit: ascending from a cursor, wrapping", () => {
  const arena = new NodeArena(1000);
  const ids = Array.from({ length: 10 }, () => arena.alloc(0, 0));
  assert.deepEqual(ids, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  // Freed ids (in a scrambled order) are taken before fresh ones, ascending from the cursor
  // and wrapping; only then does the arena grow (11).
  for (const id of [9, 3, 7, 4]) arena.free(id);
  assert.deepEqual([arena.alloc(0, 0), arena.alloc(0, 0), arena.alloc(0, 0)], [3, 4, 7]);
  arena.free(2);
  assert.deepEqual([arena.alloc(0, 0), arena.alloc(0, 0), arena.alloc(0, 0)], [9, 2, 11]);
  assert.equal(arena.liveNodes, 11);
});

Deno.test("NodeArena.alloc() finds freed ids across summary words, in ascending order", () => {
  const arena = new NodeArena(10_000);
  for (let i = 0; i < 5000; i++) arena.alloc(0, 0);
  const freed = [4321, 77, 1024, 2048, 31, 32, 3000, 4999];
  for (const id of freed) arena.free(id);
  arena.free(2500);
  const again = Array.from({ length: freed.length + 1 }, () => arena.alloc(0, 0));
  // The cursor sits past 5000, so the search wraps to 0 and then walks up.
  assert.deepEqual(again, [31, 32, 77, 1024, 2048, 2500, 3000, 4321, 4999]);
  assert.equal(arena.alloc(0, 0), 5001);
});

Deno.test("NodeArena never hands out a live id and reuses every freed one", () => {
  fc.assert(
    fc.property(fc.array(fc.nat(99), { maxLength: 400, size: "max" }), (picks) => {
      const arena = new NodeArena(5000);
      const live: number[] = [];
      let maxId = 0;
      let maxLive = 0;
      for (const pick of picks) {
        if (pick < 60 || live.length === 0) {
          const id = arena.alloc(0, 0);
          assert.ok(!live.includes(id), `id ${id} is live`);
          assert.notEqual(id, ROOT);
          live.push(id);
          maxId = Math.max(maxId, id);
          maxLive = Math.max(maxLive, live.length);
        } else {
          const [id] = live.splice(pick % live.length, 1);
          arena.free(id!);
        }
        assert.equal(arena.liveNodes, live.length);
      }
      // Freed ids are reused before the arena grows: ids stay below the peak live count.
      assert.ok(maxId <= maxLive, `id ${maxId} with at most ${maxLive} live`);
    }),
    { numRuns: 100 },
  );
});

Deno.test("NodeArena.findChild() finds children by key, with and without the child table", () => {
  const arena = new NodeArena(100);
  const a = arena.allocChild(ROOT, 0, 1, 0, 10, 0, 1);
  assert.equal(arena.findChild(ROOT, 0, 1), a);
  assert.equal(arena.findChild(ROOT, 1, 1), NONE);
  const children = [2, 3, 4, 5, 6].map((lo) => arena.allocChild(a, 0xffff_ffff, lo, 0, lo, 0, 1));
  children.forEach((c, i) => assert.equal(arena.findChild(a, 0xffff_ffff, i + 2), c));
  assert.equal(arena.childCount(a), 5);
  arena.unlink(children[2]!);
  arena.unlink(children[0]!);
  arena.unlink(children[4]!);
  assert.equal(arena.findChild(a, 0xffff_ffff, 4), NONE);
  assert.equal(arena.findChild(a, 0xffff_ffff, 3), children[1]);
  assert.equal(arena.findChild(a, 0xffff_ffff, 5), children[3]);
  arena.unlink(children[3]!);
  assert.equal(arena.childCount(a), 1);
  assert.equal(arena.findChild(a, 0xffff_ffff, 3), children[1]);
  assert.equal(arena.firstChild(a), children[1]);
});

Deno.test("NodeArena worker sets move between inline slots and bitsets", () => {
  const arena = new NodeArena(10);
  const n = arena.alloc(0, 0);
  const workers = [5, 0, 31, 32, 200, 1000];
  for (const w of workers) assert.equal(arena.addWorker(n, w), true);
  assert.equal(arena.addWorker(n, 32), false);
  assert.equal(arena.workerCount(n), workers.length);
  assert.notEqual(arena.setIndex(n), NONE);
  for (const w of workers) assert.ok(arena.hasWorker(n, w), `has ${w}`);
  assert.ok(!arena.hasWorker(n, 33));
  assert.ok(!arena.hasWorker(n, 5000));
  for (const w of [1000, 0, 31]) assert.equal(arena.removeWorker(n, w), true);
  assert.equal(arena.removeWorker(n, 31), false);
  assert.equal(arena.workerCount(n), INLINE_WORKERS);
  assert.equal(arena.setIndex(n), NONE);
  const inline = Array.from({ length: INLINE_WORKERS }, (_, i) => arena.inlineWorker(n, i));
  assert.deepEqual(inline.sort((x, y) => x - y), [5, 32, 200]);
});

Deno.test("NodeArena keeps each link word in step with the node's parent and workers", () => {
  const arena = new NodeArena(100);
  // A chain in consecutive records: each is chained to the one before, held by worker 7.
  const a = arena.allocChild(ROOT, 0, 1, 0, 1, 7, 1);
  const b = arena.allocChild(a, 0, 2, 0, 2, 7, 1);
  const c = arena.allocChild(b, 0, 3, 0, 3, 7, 1);
  assert.deepEqual([a, b, c], [1, 2, 3]);
  assert.equal(link(arena, a), LINK_CHAINED | 7, "the root's first child is record 0 + 1");
  assert.equal(link(arena, b), LINK_CHAINED | 7);
  // A second worker: still chained, no sole worker; back to one worker: sole again.
  arena.addWorker(b, 9);
  assert.equal(link(arena, b), LINK_CHAINED | LINK_NO_SOLE);
  arena.removeWorker(b, 7);
  assert.equal(link(arena, b), LINK_CHAINED | 9);
  // Through a bitset and back.
  for (const w of [1, 2, 3, 4]) arena.addWorker(b, w);
  assert.equal(link(arena, b), LINK_CHAINED | LINK_NO_SOLE);
  for (const w of [1, 2, 3, 4]) arena.removeWorker(b, w);
  assert.equal(link(arena, b), LINK_CHAINED | 9);
  // Moved under a parent that is not the record before: no longer chained.
  arena.unlink(c);
  assert.equal(link(arena, c), 7);
  arena.link(c, a, 0, 3);
  assert.equal(link(arena, c), 7);
  arena.unlink(c);
  arena.link(c, b, 0, 3);
  assert.equal(link(arena, c), LINK_CHAINED | 7);
  arena.removeWorker(c, 7);
  assert.equal(link(arena, c), LINK_CHAINED | LINK_NO_SOLE);
  // A freed record is neither chained nor held.
  arena.unlink(c);
  arena.free(c);
  assert.equal(link(arena, c), LINK_NO_SOLE);
});
