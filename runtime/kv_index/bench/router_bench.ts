/**
 * Router index benchmark (`deno task bench:router`): replays the Mooncake conversation trace
 * against `KvIndex` the way a KV-aware router sees it, and prints one JSON line:
 * `{"ops_per_sec", "find_matches_p50_us", "find_matches_p99_us", "bytes_per_block", …}`.
 *
 * Usage: `deno run -A --v8-flags=--expose-gc runtime/kv_index/bench/router_bench.ts
 * [--trace PATH] [--workers 64] [--lru-blocks 16384] [--passes 5]`.
 *
 * 1. Prompts. Each trace hash id stands for 512 tokens; it is expanded to 512 synthetic
 *    tokens `id * 512 + position` (distinct per id and position, so every 64-token engine
 *    block is distinct) and the prompt is its first `input_length` tokens. Local hashes come
 *    from `BlockHasher` at block size 64 and sequence hashes (used as the engine's block
 *    hashes) from its chaining. A hash id always has the same prefix, so each id is hashed
 *    once; the throughput of that step is reported on stderr.
 * 2. Routing. Request → worker by prefix affinity on its first two hash ids (the shared
 *    system prompt, id 0, and the conversation's first turn), hashed mod `--workers`: a
 *    conversation stays on one worker, while the system prompt ends up cached everywhere.
 * 3. Engines. Each worker's prefix cache is an LRU of `--lru-blocks` engine blocks. A
 *    request hits the longest cached prefix of its blocks; the missing blocks are cached,
 *    evicting least-recently-used ones first. Blocks are touched deepest first so that a
 *    parent is always more recent than its children and eviction takes leaves first, as
 *    vLLM's free-block queue does. Evictions become Removed events and new blocks a
 *    parent-linked Stored event, both split into batches of at most 128 blocks (Dynamo's
 *    publisher batching), Removed first.
 * 4. The op sequence — per request: `findMatches(local hashes)`, then that worker's events —
 *    is generated up front. Only its replay against a fresh `KvIndex` is timed, on the one
 *    JavaScript thread: two untimed warm-up replays (JIT), then `--passes` timed ones (5).
 *    Each figure is the median over the passes (ops/s of the median pass; each latency
 *    percentile the median of the passes' percentiles, every pass's p99 listed), because a
 *    shared machine makes any single pass noisy. An op is one block:
 *    stored, removed, or looked up (every block of a request's hash sequence counts, as
 *    upstream's "block throughput" does). `find_matches_*_us` are per-call latencies from
 *    `performance.now()` around each call, made as the router makes it (into one reused
 *    `OverlapBuffer`), its own cost (`timer_overhead_us`) included; `timer_resolution_us` is
 *    checked at start and a warning printed if it is not below 1 µs. The request's hashes
 *    were made when the ops were generated, so unlike a router's, which it has just
 *    computed, they are not in the CPU cache. The first half of a replay builds the index up
 *    from empty (memory is touched for the first time); `ops_per_sec_second_half` is closer
 *    to a steady state.
 * 5. `bytes_per_block` is the growth of V8 heap plus external (typed array) memory across the
 *    first timed replay, with `gc()` before each reading, divided by the blocks indexed at
 *    the end. `index_bytes_per_block` is the index's own count of its typed arrays.
 */

import { BlockHasher } from "../../tokens/mod.ts";
import { KvIndex, OverlapBuffer, type StoredBlockInput } from "../mod.ts";

const TRACE_BLOCK_TOKENS = 512;
const ENGINE_BLOCK_TOKENS = 64;
const SUB_BLOCKS = TRACE_BLOCK_TOKENS / ENGINE_BLOCK_TOKENS;
const MAX_BATCH_BLOCKS = 128;

export interface Options {
  tracePath: string;
  workers: number;
  lruBlocks: number;
  passes: number;
}

export interface TraceRequest {
  inputLength: number;
  hashIds: number[];
}

export type Op =
  | { kind: "find"; worker: number; hashes: BigUint64Array }
  | { kind: "store"; worker: number; parent: bigint | null; blocks: StoredBlockInput[] }
  | { kind: "remove"; worker: number; hashes: bigint[] };

export function parseOptions(args: string[]): Options {
  const options: Options = {
    tracePath: new URL("../../../../shared/traces/conversation_trace.jsonl", import.meta.url)
      .pathname,
    workers: 64,
    lruBlocks: 16384,
    passes: 5,
  };
  for (let i = 0; i < args.length; i++) {
    const flag = args[i];
    const value = args[i + 1];
    if (value === undefined) throw new Error(`Cannot parse ${flag}: a value is missing`);
    i++;
    if (flag === "--trace") options.tracePath = value;
    else if (flag === "--workers") options.workers = positiveInt(flag, value);
    else if (flag === "--lru-blocks") options.lruBlocks = positiveInt(flag, value);
    else if (flag === "--passes") options.passes = positiveInt(flag, value);
    else {throw new Error(
        `Cannot parse ${flag}: unknown flag (--trace, --workers, --lru-blocks, --passes)`,
      );}
  }
  return options;
}

function positiveInt(flag: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) {
    throw new Error(`Cannot parse ${flag} "${value}": a positive integer is required`);
  }
  return n;
}

export function readTrace(path: string): TraceRequest[] {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Error(`Cannot read trace "${path}": file not found (pass --trace PATH)`);
    }
    throw error;
  }
  const out: TraceRequest[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    const row = JSON.parse(line) as { input_length: number; hash_ids: number[] };
    out.push({ inputLength: row.input_length, hashIds: row.hash_ids });
  }
  return out;
}

/** Local and sequence hashes of every trace hash id's eight 64-token engine blocks. */
export interface BlockHashes {
  local: BigUint64Array;
  seq: BigUint64Array;
  done: Uint8Array;
}

export function hashTrace(requests: TraceRequest[]): BlockHashes {
  let maxId = 0;
  for (const r of requests) for (const id of r.hashIds) maxId = Math.max(maxId, id);
  const local = new BigUint64Array((maxId + 1) * SUB_BLOCKS);
  const seq = new BigUint64Array((maxId + 1) * SUB_BLOCKS);
  const done = new Uint8Array(maxId + 1);
  const hasher = new BlockHasher();
  const tokens = new Uint32Array(TRACE_BLOCK_TOKENS);
  const t0 = performance.now();
  let hashedIds = 0;
  for (const r of requests) {
    let parent = 0n;
    for (let p = 0; p < r.hashIds.length; p++) {
      const id = r.hashIds[p]!;
      if (done[id] === 0) {
        for (let j = 0; j < TRACE_BLOCK_TOKENS; j++) tokens[j] = id * TRACE_BLOCK_TOKENS + j;
        const hashes = hasher.localHashes(tokens, ENGINE_BLOCK_TOKENS);
        for (let s = 0; s < SUB_BLOCKS; s++) {
          const h = hashes[s]!;
          local[id * SUB_BLOCKS + s] = h;
          parent = p === 0 && s === 0 ? h : hasher.chain(parent, h);
          seq[id * SUB_BLOCKS + s] = parent;
        }
        done[id] = 1;
        hashedIds++;
      } else {
        parent = seq[id * SUB_BLOCKS + SUB_BLOCKS - 1]!;
      }
    }
  }
  const ms = performance.now() - t0;
  const tokensHashed = hashedIds * TRACE_BLOCK_TOKENS;
  console.error(
    `hashing (not timed below): ${hashedIds} trace blocks = ${tokensHashed} tokens = ` +
      `${hashedIds * SUB_BLOCKS} engine blocks in ${ms.toFixed(0)} ms ` +
      `(${(tokensHashed / ms / 1000).toFixed(1)} M tokens/s, ` +
      `${(hashedIds * SUB_BLOCKS / ms / 1000).toFixed(2)} M local+sequence hashes/s)`,
  );
  return { local, seq, done };
}

/** Prefix affinity on the first two hash ids (see the module comment). */
function routeRequest(r: TraceRequest, workers: number): number {
  const a = r.hashIds[0] ?? 0;
  const b = r.hashIds[1] ?? a;
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(b + 0x632be5ab, 0xc2b2ae35);
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  return (h >>> 0) % workers;
}

export interface OpCounts {
  stored: number;
  removed: number;
  looked: number;
  finds: number;
  cachedBlocks: number;
}

export function generateOps(
  requests: TraceRequest[],
  hashes: BlockHashes,
  options: Options,
): { ops: Op[]; counts: OpCounts } {
  const lrus = Array.from({ length: options.workers }, () => new Map<number, true>());
  const ops: Op[] = [];
  const counts: OpCounts = { stored: 0, removed: 0, looked: 0, finds: 0, cachedBlocks: 0 };
  for (const r of requests) {
    const n = Math.min(
      Math.floor(r.inputLength / ENGINE_BLOCK_TOKENS),
      r.hashIds.length * SUB_BLOCKS,
    );
    if (n === 0) continue;
    // Global engine block ids: hash id * 8 + sub-block.
    const blocks = new Int32Array(n);
    const local = new BigUint64Array(n);
    for (let i = 0; i < n; i++) {
      const g = r.hashIds[Math.floor(i / SUB_BLOCKS)]! * SUB_BLOCKS + (i % SUB_BLOCKS);
      blocks[i] = g;
      local[i] = hashes.local[g]!;
    }
    const worker = routeRequest(r, options.workers);
    ops.push({ kind: "find", worker, hashes: local });
    counts.looked += n;
    counts.finds++;

    const lru = lrus[worker]!;
    let hit = 0;
    while (hit < n && lru.has(blocks[hit]!)) hit++;
    counts.cachedBlocks += hit;
    for (let i = hit - 1; i >= 0; i--) {
      lru.delete(blocks[i]!);
      lru.set(blocks[i]!, true);
    }
    const evicted: bigint[] = [];
    const fresh = n - hit;
    while (lru.size + fresh > options.lruBlocks) {
      const oldest = lru.keys().next().value!;
      lru.delete(oldest);
      evicted.push(hashes.seq[oldest]!);
    }
    for (let i = n - 1; i >= hit; i--) lru.set(blocks[i]!, true);
    for (let i = 0; i < evicted.length; i += MAX_BATCH_BLOCKS) {
      ops.push({ kind: "remove", worker, hashes: evicted.slice(i, i + MAX_BATCH_BLOCKS) });
    }
    counts.removed += evicted.length;
    for (let start = hit; start < n; start += MAX_BATCH_BLOCKS) {
      const end = Math.min(n, start + MAX_BATCH_BLOCKS);
      const stored: StoredBlockInput[] = [];
      for (let i = start; i < end; i++) {
        stored.push({ blockHash: hashes.seq[blocks[i]!]!, tokensHash: local[i]! });
      }
      const parent = start === 0 ? null : hashes.seq[blocks[start - 1]!]!;
      ops.push({ kind: "store", worker, parent, blocks: stored });
    }
    counts.stored += fresh;
  }
  return { ops, counts };
}

export interface ReplayResult {
  ms: number;
  /** Replay time of the ops before / from the middle op. */
  firstHalfMs: number;
  secondHalfMs: number;
  latenciesUs: Float64Array;
  errors: number;
  matchedBlocks: number;
}

/**
 * Replays `ops` against `index`, timing the whole and each findMatches call (made as the router
 * makes it, into one reused buffer).
 */
export function replay(index: KvIndex, ops: Op[], finds: number): ReplayResult {
  const latenciesUs = new Float64Array(finds);
  const buffer = new OverlapBuffer();
  const middle = ops.length >> 1;
  let f = 0;
  let errors = 0;
  let matchedBlocks = 0;
  const t0 = performance.now();
  let tMiddle = t0;
  for (let i = 0; i < ops.length; i++) {
    if (i === middle) tMiddle = performance.now();
    const op = ops[i]!;
    if (op.kind === "find") {
      const s = performance.now();
      index.findMatches(op.hashes, buffer);
      latenciesUs[f++] = (performance.now() - s) * 1000;
      matchedBlocks += buffer.depthOf(op.worker);
    } else if (op.kind === "store") {
      if (index.applyStored(op.worker, op.parent, op.blocks) !== "ok") errors++;
    } else if (index.applyRemoved(op.worker, op.hashes) !== "ok") {
      errors++;
    }
  }
  const t1 = performance.now();
  return {
    ms: t1 - t0,
    firstHalfMs: tMiddle - t0,
    secondHalfMs: t1 - tMiddle,
    latenciesUs,
    errors,
    matchedBlocks,
  };
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

function memoryBytes(): number {
  const m = Deno.memoryUsage();
  return m.heapUsed + m.external;
}

/** Collects garbage and lets V8 finish freeing array buffers (their sweeping is deferred). */
async function settleMemory(gc: (() => void) | undefined): Promise<number> {
  for (let i = 0; i < 3; i++) {
    gc?.();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return memoryBytes();
}

function timerOverheadUs(): number {
  const samples = new Float64Array(10_001);
  for (let i = 0; i < samples.length; i++) {
    const s = performance.now();
    samples[i] = (performance.now() - s) * 1000;
  }
  samples.sort();
  return percentile(samples, 0.5);
}

/** The smallest positive step between consecutive `performance.now()` readings. */
function timerResolutionUs(): number {
  let best = Infinity;
  let previous = performance.now();
  for (let i = 0; i < 100_000; i++) {
    const t = performance.now();
    if (t > previous) best = Math.min(best, t - previous);
    previous = t;
  }
  return best * 1000;
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

function opBlocks(op: Op): number {
  return op.kind === "store" ? op.blocks.length : op.hashes.length;
}

interface MemoryPass {
  result: ReplayResult;
  bytesPerBlock: number;
  indexBytesPerBlock: number;
  indexedBlocks: number;
  lookupEntries: number;
}

/** A timed pass that also measures memory: heap + external growth across the replay. */
async function memoryPass(
  ops: Op[],
  finds: number,
  gc: (() => void) | undefined,
): Promise<MemoryPass> {
  const before = await settleMemory(gc);
  const index = new KvIndex();
  const result = replay(index, ops, finds);
  const after = await settleMemory(gc);
  const indexedBlocks = index.sizeBlocks;
  return {
    result,
    bytesPerBlock: (after - before) / indexedBlocks,
    indexBytesPerBlock: index.memoryBytes / indexedBlocks,
    indexedBlocks,
    lookupEntries: index.workers().reduce((sum, w) => sum + index.workerTreeSize(w), 0),
  };
}

async function main(): Promise<void> {
  const options = parseOptions(Deno.args);
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) {
    console.error(
      "warning: gc() is not exposed; run with --v8-flags=--expose-gc for bytes_per_block",
    );
  }
  const resolutionUs = timerResolutionUs();
  if (!(resolutionUs < 1)) {
    console.error(
      `warning: performance.now() resolves only ${resolutionUs} µs; per-call latencies are coarse`,
    );
  }
  const requests = readTrace(options.tracePath);
  const hashes = hashTrace(requests);
  const g0 = performance.now();
  const { ops, counts } = generateOps(requests, hashes, options);
  console.error(
    `generated ${ops.length} events/calls for ${counts.finds} requests on ${options.workers} ` +
      `workers in ${(performance.now() - g0).toFixed(0)} ms (engine prefix hits ` +
      `${(100 * counts.cachedBlocks / counts.looked).toFixed(1)}% of blocks)`,
  );
  const totalOps = counts.stored + counts.removed + counts.looked;
  let firstHalfOps = 0;
  for (let i = 0; i < ops.length >> 1; i++) firstHalfOps += opBlocks(ops[i]!);

  // Warm-up (JIT), untimed.
  replay(new KvIndex(), ops, counts.finds);
  replay(new KvIndex(), ops, counts.finds);
  const memory = await memoryPass(ops, counts.finds, gc);
  const results: ReplayResult[] = [memory.result];
  for (let pass = 1; pass < options.passes; pass++) {
    results.push(replay(new KvIndex(), ops, counts.finds));
  }
  // The median pass by replay time (the machine may be shared and noisy).
  results.sort((x, y) => x.ms - y.ms);
  const best = results[(results.length - 1) >> 1]!;
  const sortedPasses = results.map((r) => r.latenciesUs.slice().sort());
  /** The median over passes of each pass's `p` percentile. */
  const latency = (p: number) => {
    const values = Float64Array.from(sortedPasses, (sorted) => percentile(sorted, p)).sort();
    return round(values[(values.length - 1) >> 1]!, 2);
  };
  const line = {
    ops_per_sec: Math.round(totalOps / (best.ms / 1000)),
    find_matches_p50_us: latency(0.5),
    find_matches_p99_us: latency(0.99),
    bytes_per_block: round(memory.bytesPerBlock, 1),
    ops: totalOps,
    stored_blocks: counts.stored,
    removed_blocks: counts.removed,
    find_matches_blocks: counts.looked,
    find_matches_calls: counts.finds,
    ops_per_sec_first_half: Math.round(firstHalfOps / (best.firstHalfMs / 1000)),
    ops_per_sec_second_half: Math.round((totalOps - firstHalfOps) / (best.secondHalfMs / 1000)),
    ops_per_sec_passes: results.map((r) => Math.round(totalOps / (r.ms / 1000))),
    find_matches_p99_us_passes: sortedPasses.map((sorted) => round(percentile(sorted, 0.99), 2)),
    find_matches_p90_us: latency(0.9),
    find_matches_p999_us: latency(0.999),
    find_matches_max_us: round(
      Math.max(...sortedPasses.map((sorted) => sorted[sorted.length - 1]!)),
      2,
    ),
    timer_overhead_us: round(timerOverheadUs(), 3),
    timer_resolution_us: round(resolutionUs, 3),
    replay_ms: round(best.ms, 1),
    indexed_blocks: memory.indexedBlocks,
    lookup_entries: memory.lookupEntries,
    index_bytes_per_block: round(memory.indexBytesPerBlock, 1),
    // Equal when the index mirrors the simulated caches exactly: a correctness check.
    routed_worker_matched_blocks: best.matchedBlocks,
    engine_prefix_hit_blocks: counts.cachedBlocks,
    apply_errors: best.errors,
    workers: options.workers,
    lru_blocks: options.lruBlocks,
    passes: options.passes,
  };
  console.log(JSON.stringify(line));
}

if (import.meta.main) {
  try {
    await main();
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    Deno.exit(1);
  }
}
