/**
 * The honesty check: with one worker, an unbounded KV cache and engine blocks as large as
 * the trace's blocks (512 tokens), the prefix-cache hits the simulated engine measures must
 * be the trace's own prefix reuse (`tracePrefixReuse`: leading hash ids already seen in
 * earlier lines, over all ids), block for block, except where the two definitions cannot
 * agree. Those cases are counted here from the trace lines alone, independently of the
 * simulator:
 *
 * - `partialOnly`: the trace counts an id as seen even if it was only ever the partial last
 *   block of earlier prompts. An engine caches full blocks only, so it cannot hit that id
 *   (nor any id after it in the run).
 * - `lastBlock`: an engine never serves a whole prompt from cache. Like vLLM it recomputes
 *   the last block when every block hits (at most floor((len - 1) / 512) blocks hit), and
 *   a partial last block is never cached at all.
 *
 * Everything else must agree exactly, so the test asserts equality per request, not a
 * tolerance.
 */
import assert from "node:assert/strict";
import { DEFAULT_KV_ROUTER_CONFIG } from "../router/mod.ts";
import { parseMooncakeTrace, type TraceLine, tracePrefixReuse } from "../workload/mod.ts";
import { simReport, simulate, traceSimWorkload } from "./mod.ts";

const BLOCK = 512;
/** The first 500 lines of the Mooncake conversation trace (see tests/testdata/README.md). */
const TRACE = new URL("../../tests/testdata/conversation_trace_head500.jsonl", import.meta.url);
/** Enough lines for real reuse (16%, with `partialOnly` cases) in well under a second. */
const SLICE_LINES = 500;

interface Accounting {
  /** Leading ids already seen, per line (what `tracePrefixReuse` counts). */
  readonly traceHits: number[];
  /** Blocks an engine can serve from an unbounded cache, per line. */
  readonly engineHits: number[];
  readonly partialOnly: number;
  readonly lastBlock: number;
  readonly totalIds: number;
}

/** Replays the trace's definition and the engine's constraints side by side. */
function account(lines: readonly TraceLine[]): Accounting {
  const seen = new Set<number>();
  const seenFull = new Set<number>();
  const traceHits: number[] = [];
  const engineHits: number[] = [];
  let partialOnly = 0;
  let lastBlock = 0;
  let totalIds = 0;
  for (const line of lines) {
    const ids = line.hash_ids;
    let k = 0;
    while (k < ids.length && seen.has(ids[k]!)) k++;
    let full = 0;
    while (full < k && seenFull.has(ids[full]!)) full++;
    const servable = Math.floor((line.input_length - 1) / BLOCK);
    traceHits.push(k);
    engineHits.push(Math.min(full, servable));
    partialOnly += k - full;
    lastBlock += Math.max(0, full - servable);
    totalIds += ids.length;
    const fullBlocks = Math.floor(line.input_length / BLOCK);
    ids.forEach((id, i) => {
      seen.add(id);
      if (i < fullBlocks) seenFull.add(id);
    });
  }
  return { traceHits, engineHits, partialOnly, lastBlock, totalIds };
}

/** Simulates the lines on one worker with an unbounded cache; cached blocks per line. */
async function engineCachedBlocks(lines: readonly TraceLine[]): Promise<{
  perLine: number[];
  blockHitRate: number;
  tokenHitRate: number;
}> {
  const uniqueBlocks = new Set(lines.flatMap((l) => l.hash_ids)).size;
  const result = await simulate(
    traceSimWorkload(lines, { blockSize: BLOCK, arrivalSpeedup: 1, description: "slice" }),
    {
      workers: 1,
      // Every block the lines can produce fits: nothing is ever evicted (or preempted).
      engine: {
        blockSizeTokens: BLOCK,
        numGpuBlocks: uniqueBlocks + 1024,
        contextLengthTokens: 1 << 18,
      },
      routerMode: "round-robin",
      kvRouter: DEFAULT_KV_ROUTER_CONFIG,
      seed: 0,
      ignoreEos: true,
    },
  );
  const perLine = new Array<number>(lines.length).fill(-1);
  for (const s of result.samples) {
    assert.ok(s.ok, `${s.requestId} failed: ${s.errorReason}`);
    assert.equal(s.cachedTokens! % BLOCK, 0);
    perLine[Number(/^trace-(\d+)#0$/.exec(s.requestId)![1])] = s.cachedTokens! / BLOCK;
  }
  const report = simReport(result, { label: "slice", workload: "slice", config: {}, wallS: 0 });
  return {
    perLine,
    blockHitRate: report.extra["prefix_cache_block_hit_rate"] as number,
    tokenHitRate: report.prefix_cache_hit_rate!,
  };
}

Deno.test({
  name:
    "simulate(): on a conversation_trace.jsonl slice the engine hits are the trace's prefix reuse",
  fn: async (t) => {
    const lines = parseMooncakeTrace(await Deno.readTextFile(TRACE), "conversation_trace.jsonl");
    assert.equal(lines.length, SLICE_LINES);
    const expected = account(lines);
    const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
    const traceHits = sum(expected.traceHits);
    assert.equal(traceHits / expected.totalIds, tracePrefixReuse(lines), "accounting = library");
    assert.ok(expected.partialOnly > 0, "the slice exercises the partial-block case");

    // Open loop, as the trace is replayed. One worker admits requests in arrival order and
    // schedules running requests first, so by the time a request is admitted every earlier
    // prompt's blocks are allocated (and so cached): timing cannot cost a hit here.
    const engine = await engineCachedBlocks(lines);
    await t.step("per request", () => assert.deepEqual(engine.perLine, expected.engineHits));
    await t.step("in total", () => {
      const engineHits = traceHits - expected.partialOnly - expected.lastBlock;
      assert.equal(sum(engine.perLine), engineHits);
      assert.equal(engine.blockHitRate, engineHits / expected.totalIds);
    });
    // The token-level rate (cached tokens / prompt tokens) is what the report leads with.
    const promptTokens = sum(lines.map((l) => l.input_length));
    assert.equal(engine.tokenHitRate, sum(engine.perLine) * BLOCK / promptTokens);
  },
});

Deno.test("simulate(): whole-prompt and partial-block hits are accounted as the engine serves them", async () => {
  // Hand-made lines for the cases the real slice lacks: a repeated prompt of exactly two
  // blocks (the engine recomputes its last block), a repeated prompt with a partial tail,
  // and an id seen only as a partial block that later appears full.
  const lines: TraceLine[] = [
    { timestamp: 0, input_length: 1024, output_length: 3, hash_ids: [1, 2] },
    { timestamp: 1000, input_length: 1024, output_length: 3, hash_ids: [1, 2] },
    { timestamp: 2000, input_length: 700, output_length: 3, hash_ids: [5, 6] },
    { timestamp: 3000, input_length: 700, output_length: 3, hash_ids: [5, 6] },
    { timestamp: 4000, input_length: 1500, output_length: 3, hash_ids: [5, 6, 7] },
    { timestamp: 5000, input_length: 1600, output_length: 3, hash_ids: [1, 2, 8, 9] },
  ];
  const expected = account(lines);
  assert.deepEqual(expected.traceHits, [0, 2, 0, 2, 2, 2]);
  assert.deepEqual(expected.engineHits, [0, 1, 0, 1, 1, 2]);
  assert.equal(expected.lastBlock, 1);
  assert.equal(expected.partialOnly, 2);
  const engine = await engineCachedBlocks(lines);
  assert.deepEqual(engine.perLine, expected.engineHits);
});
