import assert from "node:assert/strict";
import fc from "fast-check";
import { DynamoError } from "../errors/mod.ts";
import type { KvCacheEvent, KvStoredBlock, RouterEvent } from "../protocol/mod.ts";
import type { KvEventUpdate } from "./kv_event_batcher.ts";
import { KvEventRelay } from "./kv_event_relay.ts";
import { setLogLevel } from "../observability/mod.ts";

setLogLevel("error");

const block = (h: bigint): KvStoredBlock => ({
  block_hash: h,
  tokens_hash: h * 1000n,
  token_ids: [Number(h)],
});
const stored = (parent: bigint | null, hashes: bigint[], dpRank = 0): KvEventUpdate => ({
  data: { stored: { parent_hash: parent, blocks: hashes.map(block) } },
  dp_rank: dpRank,
});
const removed = (hashes: bigint[], dpRank = 0): KvEventUpdate => ({
  data: { removed: { block_hashes: hashes } },
  dp_rank: dpRank,
});

function relay(options: { ringCapacity?: number; maxDumpBlocksPerEvent?: number } = {}) {
  const published: RouterEvent[] = [];
  const r = new KvEventRelay({ workerId: 7, publish: (e) => published.push(e), ...options });
  return { r, published };
}

Deno.test("KvEventRelay numbers events from 1 and publishes them as RouterEvents", () => {
  const { r, published } = relay();
  r.relayAll([stored(null, [1n]), removed([1n]), { data: "cleared", dp_rank: 0 }]);
  assert.deepEqual(published.map((e) => [e.worker_id, e.event.event_id]), [[7, 1], [7, 2], [7, 3]]);
  assert.deepEqual(published[1]!.event, { event_id: 2, data: removed([1n]).data, dp_rank: 0 });
  assert.equal(r.lastEventId, 3);
});

Deno.test("KvEventRelay.query() returns a range from the ring, or undefined once it has left", () => {
  const { r } = relay({ ringCapacity: 4 });
  assert.deepEqual(r.query(1, 10), [], "nothing published yet");
  for (let i = 1n; i <= 6n; i++) r.relay(stored(null, [i]));
  assert.equal(r.oldestBufferedId, 3);
  assert.deepEqual(r.query(3, 4)!.map((e) => e.event_id), [3, 4]);
  assert.deepEqual(r.query(5, 99)!.map((e) => e.event_id), [5, 6], "clamped to the last id");
  assert.deepEqual(r.query(7, 9), [], "not published yet");
  assert.equal(r.query(2, 4), undefined);
  assert.throws(
    () => r.query(4, 3),
    (err: unknown) => err instanceof DynamoError && err.reason === "invalid_event_range",
  );
  assert.throws(() => r.query(0, 3), DynamoError);
});

Deno.test("KvEventRelay.dump() rebuilds the stored blocks, parents first, one event per chain", () => {
  const { r } = relay({ maxDumpBlocksPerEvent: 3 });
  r.relay(stored(null, [1n, 2n, 3n, 4n, 5n])); // a chain longer than 3: split
  r.relay(stored(2n, [20n])); // a branch off 2
  r.relay(stored(null, [9n], 1)); // another rank
  r.relay(removed([5n]));
  r.relay(stored(77n, [78n])); // its parent was never stored: unreachable, left out
  const dump = r.dump();
  assert.equal(dump.lastEventId, 5);
  const shape = dump.events.map((e) => {
    const d = e.data as { stored: { parent_hash: bigint | null; blocks: KvStoredBlock[] } };
    assert.equal(e.event_id, 5);
    return [e.dp_rank, d.stored.parent_hash, d.stored.blocks.map((b) => b.block_hash)];
  });
  assert.deepEqual(shape, [
    [0, null, [1n, 2n]], // 2 has two children: the chain ends there
    [0, 2n, [3n, 4n]],
    [0, 2n, [20n]],
    [1, null, [9n]],
  ]);
  const first = dump.events[0]!.data;
  assert.ok(typeof first === "object" && "stored" in first);
  assert.deepEqual(first.stored.blocks[0], block(1n), "tokens_hash and token_ids kept");
  r.relay({ data: "cleared", dp_rank: 1 }); // Cleared wipes every rank, as the router does
  assert.deepEqual(r.dump(), { lastEventId: 6, events: [] });
  assert.equal(r.trackedBlocks, 0);
});

Deno.test("KvEventRelay bounds the blocks it tracks", () => {
  const { r } = relay();
  const small = new KvEventRelay({ workerId: 1, publish: () => {}, maxTrackedBlocks: 2 });
  small.relay(stored(null, [1n, 2n, 3n]));
  assert.equal(small.trackedBlocks, 2);
  assert.equal(r.trackedBlocks, 0);
});

/** What a router holds for one worker: blocks reachable from a root through known parents. */
class ReferenceIndex {
  readonly blocks = new Map<string, { parent: bigint | null; tokensHash: bigint }>();
  apply(e: KvCacheEvent): void {
    const key = (h: bigint) => `${e.dp_rank}/${h}`;
    if (e.data === "cleared") this.blocks.clear();
    else if ("removed" in e.data) {
      for (const h of e.data.removed.block_hashes) this.blocks.delete(key(h));
    } else {
      const { parent_hash, blocks } = e.data.stored;
      if (parent_hash !== null && !this.blocks.has(key(parent_hash))) return; // router drops it
      let parent = parent_hash;
      for (const b of blocks) {
        this.blocks.set(key(b.block_hash), { parent, tokensHash: b.tokens_hash });
        parent = b.block_hash;
      }
    }
  }
  reachable(): Map<string, bigint> {
    const out = new Map<string, bigint>();
    for (const [k, v] of this.blocks) {
      const rank = k.split("/")[0];
      let at: { parent: bigint | null } | undefined = v;
      while (at !== undefined && at.parent !== null) at = this.blocks.get(`${rank}/${at.parent}`);
      if (at !== undefined) out.set(k, v.tokensHash);
    }
    return out;
  }
}

Deno.test("KvEventRelay.dump() applied to an empty index gives what the live events gave (property)", () => {
  // An engine-like history: stores chain onto a live block or start a root, removals take
  // leaves (engines evict deepest blocks first), Cleared now and then.
  const op = fc.oneof(
    {
      weight: 6,
      arbitrary: fc.record({
        kind: fc.constant("store"),
        pick: fc.nat(),
        n: fc.integer({ min: 1, max: 4 }),
        rank: fc.integer({ min: 0, max: 1 }),
      }),
    },
    {
      weight: 3,
      arbitrary: fc.record({
        kind: fc.constant("remove"),
        pick: fc.nat(),
        n: fc.integer({ min: 1, max: 3 }),
        rank: fc.integer({ min: 0, max: 1 }),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant("clear"),
        pick: fc.nat(),
        n: fc.nat(),
        rank: fc.integer({ min: 0, max: 1 }),
      }),
    },
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 60 }), fc.integer({ min: 1, max: 5 }), (ops, maxDump) => {
      const live = new ReferenceIndex();
      const r = new KvEventRelay({
        workerId: 1,
        publish: (e) => live.apply(e.event),
        maxDumpBlocksPerEvent: maxDump,
      });
      const engine = [new Map<bigint, bigint | null>(), new Map<bigint, bigint | null>()];
      let next = 1n;
      for (const o of ops) {
        const blocks = engine[o.rank]!;
        const hashes = [...blocks.keys()];
        if (o.kind === "clear") {
          engine.forEach((m) => m.clear());
          r.relay({ data: "cleared", dp_rank: o.rank });
        } else if (o.kind === "store") {
          const parent = hashes.length === 0 || o.pick % 3 === 0
            ? null
            : hashes[o.pick % hashes.length]!;
          const fresh = Array.from({ length: o.n }, () => next++);
          let p = parent;
          for (const h of fresh) blocks.set(h, p), p = h;
          r.relay(stored(parent, fresh, o.rank));
        } else {
          const parents = new Set(blocks.values());
          const leaves = hashes.filter((h) => !parents.has(h)).slice(0, o.n);
          if (leaves.length === 0) continue;
          for (const h of leaves) blocks.delete(h);
          r.relay(removed(leaves, o.rank));
        }
      }
      const rebuilt = new ReferenceIndex();
      const dump = r.dump();
      for (const e of dump.events) {
        assert.ok(typeof e.data === "object" && "stored" in e.data);
        assert.ok(e.data.stored.blocks.length <= maxDump);
        rebuilt.apply(e);
      }
      assert.equal(dump.lastEventId, r.lastEventId);
      assert.deepEqual(rebuilt.reachable(), live.reachable());
    }),
    { numRuns: 200 },
  );
});
