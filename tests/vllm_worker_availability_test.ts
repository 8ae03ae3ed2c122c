/**
 * How a worker follows an engine that goes down and comes back (what the vLLM supervision
 * reports through `Engine.onAvailability`): out of discovery while down, its blocks cleared
 * for the routers, back in with the new engine's card once ready. In process, with an
 * engine whose availability the test drives.
 */
import assert from "node:assert/strict";
import { MemoryDiscovery, MemoryDiscoveryStore } from "../runtime/discovery/mod.ts";
import {
  type EngineAvailability,
  type EngineInfo,
  MockerEngine,
  type MockerVocabulary,
} from "../runtime/engines/mod.ts";
import { KV_DUMP_ENDPOINT, KV_EVENTS_ENDPOINT } from "../runtime/kv_events/mod.ts";
import { QWEN3_TOKENIZER_DIR } from "../runtime/llm/testing.ts";
import { setLogLevel } from "../runtime/observability/mod.ts";
import {
  BUCKETS,
  type EngineRequest,
  type ModelInstance,
  type RouterEvent,
} from "../runtime/protocol/mod.ts";
import { RequestPlaneClient } from "../runtime/transport/mod.ts";
import { systemClock } from "../runtime/util/mod.ts";
import { type WorkerConfig, WorkerRoleHandle } from "../runtime/worker/mod.ts";

setLogLevel("error");

const VOCABULARY: MockerVocabulary = {
  wordTokenIds: Array.from({ length: 40 }, (_, i) => [1000 + i]),
  eosTokenIds: [151645],
  sentenceEndTokenIds: [13],
  sentenceStartTokenIds: [[4000]],
};

const CONFIG: WorkerConfig = {
  namespace: "ns",
  component: "backend",
  endpoint: "generate",
  modelName: "m",
  modelPath: QWEN3_TOKENIZER_DIR,
  tokenizerDir: QWEN3_TOKENIZER_DIR,
  role: "agg",
  host: "127.0.0.1",
  advertiseHost: "127.0.0.1",
  maxFrameBytes: 1 << 20,
  port: 0,
  loadIntervalMs: 50,
  drainTimeoutMs: 1_000,
};

/** The mocker, plus availability changes the test announces. */
class RestartingEngine extends MockerEngine {
  readonly #listeners = new Set<(change: EngineAvailability) => void>();

  onAvailability(listener: (change: EngineAvailability) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  announce(change: EngineAvailability): void {
    for (const l of this.#listeners) l(change);
  }
}

function request(id: string): EngineRequest {
  return {
    request_id: id,
    model: "m",
    token_ids: [7, 7, 7, 7, 1, 2, 3, 4, 5],
    stop_conditions: { max_tokens: 4, min_tokens: 0, ignore_eos: true, stop_token_ids: [] },
    sampling_options: { temperature: null, top_p: null, top_k: null, seed: 1 },
    eos_token_ids: [],
  };
}

async function until(check: () => Promise<boolean> | boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

Deno.test("WorkerRoleHandle leaves discovery while its engine is down, clears its blocks, and comes back with the new card", async () => {
  const discovery = new MemoryDiscovery(new MemoryDiscoveryStore());
  const engine = new RestartingEngine({
    options: { speedupRatio: 100, blockSizeTokens: 4, numGpuBlocks: 256 },
    vocabulary: VOCABULARY,
  });
  const worker = await WorkerRoleHandle.start(
    { discovery, engine, clock: systemClock, eosTokenIds: [] },
    CONFIG,
  );
  const client = new RequestPlaneClient();
  const address = { host: "127.0.0.1", port: Number(worker.address.split(":")[1]) };
  const keys = async (bucket: string) => [...(await discovery.list(bucket as never)).keys()];
  const events = async (): Promise<RouterEvent[]> =>
    await Array.fromAsync(
      client.call(address, KV_EVENTS_ENDPOINT, { start_id: 1, end_id: 1_000 }),
    ) as RouterEvent[];
  try {
    assert.equal((await keys(BUCKETS.instances)).length, 1);
    assert.equal((await keys(BUCKETS.models)).length, 1);
    await Array.fromAsync(client.call(address, "generate", request("r1")));
    await until(async () => (await events()).length > 0, "the request's blocks");

    engine.announce({ state: "down", reason: "it was killed by SIGKILL" });
    await until(async () => (await keys(BUCKETS.instances)).length === 0, "deregistration");
    assert.deepEqual(await keys(BUCKETS.models), []);
    assert.equal((await keys(BUCKETS.eventChannels)).length, 2, "event channels stay");
    assert.equal(worker.serving, false);
    await until(async () => (await events()).at(-1)?.event.data === "cleared", "a Cleared event");
    const dump = await Array.fromAsync(client.call(address, KV_DUMP_ENDPOINT, {}));
    assert.equal(dump.length, 1, "nothing left to dump but the header");

    const info: EngineInfo = { ...worker.info, totalKvBlocks: 999 };
    engine.announce({ state: "ready", info });
    await until(async () => (await keys(BUCKETS.models)).length === 1, "registration");
    assert.equal((await keys(BUCKETS.instances)).length, 1);
    const [card] = (await discovery.list(BUCKETS.models)).values();
    assert.equal((card as ModelInstance).card_json.runtime_config.total_kv_blocks, 999);
    assert.equal(worker.serving, true);
    assert.equal(worker.info.totalKvBlocks, 999);
  } finally {
    await worker.shutdown();
    await client.close();
  }
  for (const bucket of [BUCKETS.instances, BUCKETS.models, BUCKETS.eventChannels]) {
    assert.deepEqual(await keys(bucket), [], `${bucket} after shutdown`);
  }
});
