import assert from "node:assert/strict";
import { DynamoError } from "../errors/mod.ts";
import { Registry, setLogLevel } from "../observability/mod.ts";
import type { RouterEvent } from "../protocol/mod.ts";
import { type EventQueryCaller, KvEventConsumer } from "./kv_event_consumer.ts";
import { DEFAULT_KV_ROUTER_CONFIG } from "./kv_router_config.ts";
import { KvRoutingState } from "./kv_routing_state.ts";
import { RouterMetrics } from "./router_metrics.ts";

setLogLevel("error");

const W = 0xabc;

/** Stored event for one block chained under `parent`, with hashes = the block number. */
function stored(id: number, block: number, parent: number | null): RouterEvent {
  return {
    worker_id: W,
    event: {
      event_id: id,
      dp_rank: 0,
      data: {
        stored: {
          parent_hash: parent === null ? null : BigInt(parent),
          blocks: [{ block_hash: BigInt(block), tokens_hash: BigInt(block * 1000) }],
        },
      },
    },
  };
}

/** A worker that answers range queries from its history and dumps with its current chain. */
class FakeWorker implements EventQueryCaller {
  readonly history: RouterEvent[] = [];
  evictedBefore = 1;
  readonly calls: string[] = [];

  async *call(_t: unknown, endpoint: string, payload: unknown): AsyncIterable<unknown> {
    await Promise.resolve();
    this.calls.push(endpoint);
    if (endpoint === "kv_events") {
      const { start_id, end_id } = payload as { start_id: number; end_id: number };
      if (start_id < this.evictedBefore) {
        throw new DynamoError("not_found", "events_evicted", "gone");
      }
      yield* this.history.filter((e) => e.event.event_id >= start_id && e.event.event_id <= end_id);
      return;
    }
    const last = this.history.at(-1)?.event.event_id ?? 0;
    yield { last_event_id: last };
    for (const e of this.history) yield { ...e, event: { ...e.event, event_id: last } };
  }
}

function setup() {
  const metrics = new Registry();
  const state = new KvRoutingState(DEFAULT_KV_ROUTER_CONFIG, new RouterMetrics(metrics, "t"));
  const worker = new FakeWorker();
  const consumer = new KvEventConsumer(state, worker, {
    namespace: "ns",
    addressOf: () => ({ host: "127.0.0.1", port: 1 }),
  });
  const depth = () => state.index.findMatches([1000n, 2000n, 3000n, 4000n]).depthOf(state.keyOf(W));
  return { state, worker, consumer, depth, metrics };
}

Deno.test("KvEventConsumer applies consecutive events and fills a gap from the worker's ring", async () => {
  const { worker, consumer, depth, metrics } = setup();
  for (let i = 1; i <= 4; i++) worker.history.push(stored(i, i, i === 1 ? null : i - 1));
  consumer.handle(worker.history[0]!);
  assert.equal(depth(), 1);
  consumer.handle(worker.history[3]!); // events 2 and 3 were lost on the event plane
  await consumer.idle();
  assert.equal(depth(), 4);
  assert.deepEqual(worker.calls, ["kv_events"]);
  assert.match(await metrics.metrics(), /dynamo_router_kv_event_gaps_total\{recovery="range"\} 1/);
  await consumer.close();
});

Deno.test("KvEventConsumer falls back to a full dump when the missing range was evicted", async () => {
  const { worker, consumer, depth, metrics } = setup();
  for (let i = 1; i <= 4; i++) worker.history.push(stored(i, i, i === 1 ? null : i - 1));
  worker.evictedBefore = 3;
  consumer.handle(worker.history[0]!);
  consumer.handle(worker.history[3]!);
  await consumer.idle();
  assert.equal(depth(), 4);
  assert.deepEqual(worker.calls, ["kv_events", "kv_dump"]);
  assert.match(await metrics.metrics(), /dynamo_router_kv_event_gaps_total\{recovery="dump"\} 1/);
  // A later duplicate is ignored, the next id applies.
  worker.history.push(stored(5, 5, 4));
  consumer.handle(worker.history[3]!);
  consumer.handle(worker.history[4]!);
  assert.equal(depth(), 4);
  await consumer.close();
});

Deno.test("KvEventConsumer synchronises a joining worker with a dump before live events", async () => {
  const { worker, consumer, depth } = setup();
  for (let i = 1; i <= 3; i++) worker.history.push(stored(i, i, i === 1 ? null : i - 1));
  consumer.syncWorkers(new Set([W]));
  worker.history.push(stored(4, 4, 3));
  consumer.handle(worker.history[3]!); // arrives while the dump is running: buffered
  await consumer.idle();
  assert.equal(depth(), 4);
  assert.deepEqual(worker.calls, ["kv_dump"]);
  consumer.syncWorkers(new Set());
  await consumer.close();
});
