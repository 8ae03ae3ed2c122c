import assert from "node:assert/strict";
import { DynamoError } from "../errors/mod.ts";
import type { ModelCard } from "../protocol/mod.ts";
import { Registry } from "../observability/mod.ts";
import { BlockHasher } from "../tokens/mod.ts";
import { ManualClock } from "../util/mod.ts";
import { DEFAULT_KV_ROUTER_CONFIG, type KvRouterConfig } from "./kv_router_config.ts";
import { KvRoutingState } from "./kv_routing_state.ts";
import { KvSelector } from "./kv_selector.ts";
import { RouterMetrics } from "./router_metrics.ts";
import type { RouteDecision, WorkerCandidate } from "./selector.ts";

const BS = 4;

function card(maxBatched = 64, totalBlocks = 1000): ModelCard {
  return {
    display_name: "m",
    source_path: "m",
    tokenizer_dir: "/x",
    chat_template_file: null,
    context_length: 4096,
    kv_cache_block_size: BS,
    model_type: 3,
    engine: "mocker",
    role: "agg",
    eos_token_ids: [],
    runtime_config: {
      total_kv_blocks: totalBlocks,
      max_num_seqs: 8,
      max_num_batched_tokens: maxBatched,
      data_parallel_size: 1,
    },
  };
}

function setup(overrides: Partial<KvRouterConfig> = {}, c: ModelCard = card()) {
  const state = new KvRoutingState(
    { ...DEFAULT_KV_ROUTER_CONFIG, ...overrides },
    new RouterMetrics(new Registry(), "test"),
  );
  const clock = new ManualClock(1_000);
  const selector = new KvSelector(state, { blockSizeTokens: BS, clock });
  const workers: WorkerCandidate[] = [11, 22, 33].map((instanceId) => ({ instanceId, card: c }));
  return { state, selector, workers, clock };
}

/** Tells the index that `worker` cached the full blocks of `tokens`, as a worker's events would. */
function cache(state: KvRoutingState, worker: number, tokens: number[], firstId = 1): void {
  const hasher = new BlockHasher();
  const local = hasher.localHashes(tokens, BS);
  const seq = hasher.sequenceHashes(local);
  state.applyEvent({
    worker_id: worker,
    event: {
      event_id: firstId,
      dp_rank: 0,
      data: {
        stored: {
          parent_hash: null,
          blocks: local.map((h, i) => ({ block_hash: seq[i]!, tokens_hash: h })),
        },
      },
    },
  });
}

const prompt = Array.from({ length: 40 }, (_, i) => 100 + i);

Deno.test("KvSelector.select() sends a request to the worker holding its prefix, and explains why", async () => {
  const { state, selector, workers } = setup();
  cache(state, 22, prompt.slice(0, 32));
  const request = { requestId: "r1", tokenIds: prompt };
  const explained = selector.explain(request, workers);
  const decision = await selector.select(request, workers);
  assert.equal(decision.instanceId, 22);
  assert.equal(explained.instanceId, 22);
  const c22 = explained.explanation.candidates.find((c) => c.worker_id === 22)!;
  assert.equal(c22.overlap_blocks, 8);
  assert.equal(c22.prefill_tokens, 8);
  assert.equal(c22.decode_blocks, 10);
  assert.equal(c22.logit, 8 / BS + 10);
  const c11 = explained.explanation.candidates.find((c) => c.worker_id === 11)!;
  assert.equal(c11.overlap_blocks, 0);
  assert.equal(c11.prefill_tokens, 40);
});

Deno.test("KvSelector books load, so equal requests without cache hits spread over workers", async () => {
  const { selector, workers } = setup();
  const chosen = new Set<number>();
  for (let i = 0; i < 3; i++) {
    const request = { requestId: `r${i}`, tokenIds: prompt.map((t) => t + i * 1000) };
    const d = await selector.select(request, workers);
    selector.onRouted(request, d.instanceId);
    chosen.add(d.instanceId);
  }
  assert.equal(chosen.size, 3);
});

Deno.test("KvSelector releases prefill at the first token and everything at the end", async () => {
  const { state, selector, workers } = setup();
  const request = { requestId: "r", tokenIds: prompt };
  const d = await selector.select(request, workers);
  selector.onRouted(request, d.instanceId);
  const key = state.keyOf(d.instanceId);
  assert.equal(state.sequences.activePrefillTokens(key), 40);
  assert.equal(state.sequences.activeBlocks(key), 10);
  selector.onFirstToken("r");
  assert.equal(state.sequences.activePrefillTokens(key), 0);
  selector.onFinished("r");
  assert.equal(state.sequences.activeBlocks(key), 0);
});

Deno.test("KvSelector honours a per-request overlap weight override", () => {
  const { state, selector, workers } = setup();
  cache(state, 22, prompt.slice(0, 32));
  const d = selector.explain({
    requestId: "w0",
    tokenIds: prompt,
    overrides: { overlapScoreWeight: 0 },
  }, workers);
  assert.equal(d.explanation.overlap_score_weight, 0);
  for (const c of d.explanation.candidates) assert.equal(c.logit, c.decode_blocks);
});

Deno.test("KvSelector refuses with overloaded when every worker is busy", async () => {
  const { selector, workers } = setup(
    { activePrefillTokensThresholdFrac: 1, queueThreshold: null },
    card(16),
  );
  for (let i = 0; i < 3; i++) {
    const request = { requestId: `big${i}`, tokenIds: prompt.map((t) => t + i * 500) };
    const d = await selector.select(request, workers);
    selector.onRouted(request, d.instanceId);
  }
  assert.throws(
    () => selector.select({ requestId: "late", tokenIds: prompt }, workers),
    (err: unknown) =>
      err instanceof DynamoError && err.reason === "all_workers_busy" && err.retryAfterS === 1,
  );
});

Deno.test("KvSelector parks requests while every worker is over the queue threshold", async () => {
  const { state, selector, workers } = setup({
    queueThreshold: 0.5,
    activePrefillTokensThresholdFrac: 100,
  }, card(16));
  for (let i = 0; i < 3; i++) {
    const request = { requestId: `q${i}`, tokenIds: prompt.map((t) => t + i * 500) };
    const d = await selector.select(request, workers);
    selector.onRouted(request, d.instanceId);
  }
  const box: { admitted?: RouteDecision } = {};
  const other = prompt.map((t) => t + 9000);
  const parked = Promise.resolve(selector.select({ requestId: "wait", tokenIds: other }, workers))
    .then((d) => (box.admitted = d));
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(box.admitted, undefined, "parked while all workers are loaded");
  selector.onFirstToken("q1");
  await parked;
  const admitted = box.admitted as RouteDecision | undefined;
  assert.ok(admitted !== undefined);
  const aborted = new AbortController();
  selector.onRouted({ requestId: "wait", tokenIds: other }, admitted.instanceId);
  for (const w of workers) {
    assert.ok(state.sequences.activePrefillTokens(state.keyOf(w.instanceId)) > 8);
  }
  const second = Promise.resolve(
    selector.select({ requestId: "gone", tokenIds: other }, workers, aborted.signal),
  );
  aborted.abort(new DynamoError("cancelled", "aborted", "client left"));
  await assert.rejects(
    second,
    (e: unknown) => e instanceof DynamoError && e.errorClass === "cancelled",
  );
});

Deno.test("KvSelector without KV events predicts caches from its own decisions", async () => {
  const { state, selector, workers } = setup({ useKvEvents: false });
  const first = { requestId: "a", tokenIds: prompt };
  const d1 = await selector.select(first, workers);
  selector.onRouted(first, d1.instanceId);
  selector.onFirstToken("a");
  selector.onFinished("a");
  assert.equal(state.index.sizeBlocks, 10);
  const again = selector.explain({ requestId: "b", tokenIds: prompt }, workers);
  assert.equal(again.instanceId, d1.instanceId);
  assert.equal(
    again.explanation.candidates.find((c) => c.worker_id === d1.instanceId)!.overlap_blocks,
    10,
  );
});

Deno.test("KvSelector.onWorkerRemoved() forgets the worker's cache", () => {
  const { state, selector, workers } = setup();
  cache(state, 22, prompt);
  selector.onWorkerRemoved(22);
  const d = selector.explain({ requestId: "x", tokenIds: prompt }, workers);
  assert.ok(d.explanation.candidates.every((c) => c.overlap_blocks === 0));
});
