import assert from "node:assert/strict";
import fc from "fast-check";
import { KvIndex, OverlapBuffer, type StoredBlockInput } from "./kv_index.ts";
import { ReferenceIndex, type ReferenceScores } from "./_reference_model.ts";

// Six workers, so some blocks hold more than the four inline slots, with keys across a
// 32-bit word edge. Small hash alphabets make shared prefixes, aliasing, reuse and
// self-references common; a few full 64-bit values exercise the high halves.
const WORKERS = [0, 1, 2, 3, 4, 37];
const BLOCK_HASHES = [1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n, 2n ** 64n - 1n, 2n ** 63n + 5n];
const TOKENS = [1n, 2n, 3n, 4n, 2n ** 64n - 2n];
const PROBE_TOKENS = [1n, 2n, 3n, 4n];

type Op =
  | { kind: "store"; worker: number; parent: bigint | null; blocks: StoredBlockInput[] }
  | { kind: "removed"; worker: number; hashes: bigint[] }
  | { kind: "cleared"; worker: number }
  | { kind: "removeWorker"; worker: number }
  | { kind: "find"; hashes: bigint[] }
  | { kind: "many"; ops: Op[] };

const worker = fc.constantFrom(...WORKERS);
const blockHash = fc.constantFrom(...BLOCK_HASHES);
const tokensHash = fc.constantFrom(...TOKENS);

/** Chained, engine-like hashes: a block's hash encodes its whole prefix. */
function engineHash(prefix: readonly bigint[]): bigint {
  return prefix.reduce((h, t) => h * 8n + (t % 8n), 1000n);
}

const randomStore = fc.record({
  kind: fc.constant("store" as const),
  worker,
  parent: fc.option(blockHash, { nil: null, freq: 2 }),
  blocks: fc.array(fc.record({ blockHash, tokensHash }), { minLength: 1, maxLength: 5 }),
});

const engineStore = fc.record({
  worker,
  tokens: fc.array(fc.constantFrom(...PROBE_TOKENS), { minLength: 1, maxLength: 7 }),
  from: fc.oneof(fc.constant(0), fc.nat(6)),
}).map(({ worker, tokens, from }): Op => {
  const start = Math.min(from, tokens.length - 1);
  return {
    kind: "store",
    worker,
    parent: start === 0 ? null : engineHash(tokens.slice(0, start)),
    blocks: tokens.slice(start).map((t, i) => ({
      blockHash: engineHash(tokens.slice(0, start + i + 1)),
      tokensHash: t,
    })),
  };
});

const engineRemove = fc.record({
  worker,
  tokens: fc.array(fc.constantFrom(...PROBE_TOKENS), { minLength: 1, maxLength: 7 }),
}).map(({ worker, tokens }): Op => ({
  kind: "removed",
  worker,
  hashes: tokens.map((_, i) => engineHash(tokens.slice(0, tokens.length - i))),
}));

/** The same engine chain stored by several workers: blocks with more than four workers. */
const sharedStore = fc.record({
  workers: fc.subarray(WORKERS, { minLength: 3 }),
  store: engineStore,
}).map(({ workers, store }): Op => ({
  kind: "many",
  ops: workers.map((w) => ({ ...(store as Op & { kind: "store" }), worker: w })),
}));

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 2, arbitrary: sharedStore },
  { weight: 4, arbitrary: randomStore },
  { weight: 4, arbitrary: engineStore },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("removed" as const),
      worker,
      hashes: fc.array(blockHash, { minLength: 1, maxLength: 4 }),
    }),
  },
  { weight: 2, arbitrary: engineRemove },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("cleared" as const), worker }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("removeWorker" as const), worker }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("find" as const),
      hashes: fc.array(tokensHash, { minLength: 0, maxLength: 8 }),
    }),
  },
);

/** Every length-3 query over the probe alphabet: depth 1-3 for every path. */
const PROBES: bigint[][] = PROBE_TOKENS.flatMap((a) =>
  PROBE_TOKENS.flatMap((b) => PROBE_TOKENS.map((c) => [a, b, c]))
);

function plain(result: ReferenceScores): [number[][], number[][]] {
  const sorted = (m: Map<number, number>): number[][] =>
    [...m].sort((x, y) => x[0] - y[0]).map(([k, v]) => [k, v]);
  return [sorted(result.scores), sorted(result.treeSizes)];
}

function apply(index: KvIndex | ReferenceIndex, o: Op): unknown {
  switch (o.kind) {
    case "store":
      return index.applyStored(o.worker, o.parent, o.blocks);
    case "removed":
      return index.applyRemoved(o.worker, o.hashes);
    case "cleared":
      return index.applyCleared(o.worker);
    case "removeWorker":
      return index.removeWorker(o.worker);
    case "find":
      return index instanceof KvIndex
        ? plainBuffer(index.findMatches(o.hashes))
        : plain(index.findMatches(o.hashes));
    case "many":
      return o.ops.map((inner) => apply(index, inner));
  }
}

const buffer = new OverlapBuffer();

/** An OverlapBuffer in the shape of plain(). */
function plainBuffer(buffer: OverlapBuffer): [number[][], number[][]] {
  const rows = Array.from({ length: buffer.count }, (_, i) => i).sort((x, y) =>
    buffer.workers[x]! - buffer.workers[y]!
  );
  return [
    rows.map((i) => [buffer.workers[i]!, buffer.depths[i]!]),
    rows.map((i) => [buffer.workers[i]!, buffer.treeSizes[i]!]),
  ];
}

function compareState(index: KvIndex, model: ReferenceIndex, step: number): void {
  assert.equal(index.sizeBlocks, model.sizeBlocks, `sizeBlocks after step ${step}`);
  assert.deepEqual(index.workers(), model.workers(), `workers() after step ${step}`);
  for (const w of WORKERS) {
    assert.equal(index.workerTreeSize(w), model.workerTreeSize(w), `tree size of ${w}`);
  }
  for (const probe of PROBES) {
    const expected = plain(model.findMatches(probe));
    assert.deepEqual(
      plainBuffer(index.findMatches(BigUint64Array.from(probe))),
      expected,
      `findMatches(${probe}) after step ${step}`,
    );
    assert.deepEqual(
      plainBuffer(index.findMatches(probe, buffer)),
      expected,
      `findMatches(${probe}, reused buffer) after step ${step}`,
    );
  }
}

Deno.test("KvIndex agrees with the reference model on random event sequences", () => {
  fc.assert(
    fc.property(
      fc.constantFrom(3, 6, 1000),
      fc.array(op, { minLength: 1, maxLength: 40, size: "max" }),
      (maxTreeSizeBlocks, ops) => {
        const index = new KvIndex({ maxTreeSizeBlocks });
        const model = new ReferenceIndex(maxTreeSizeBlocks);
        ops.forEach((o, step) => {
          assert.deepEqual(apply(index, o), apply(model, o), `result of step ${step}`);
          compareState(index, model, step);
          assert.ok(index.sizeBlocks <= maxTreeSizeBlocks);
        });
      },
    ),
    { numRuns: 250 },
  );
});
