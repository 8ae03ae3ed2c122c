import assert from "node:assert/strict";
import { MemoryDiscovery, MemoryDiscoveryStore } from "../discovery/mod.ts";
import { type ModelTokenizer, TokenizerCache } from "../llm/mod.ts";
import { qwen3Tokenizer } from "../llm/testing.ts";
import { BUCKETS, discoveryKey } from "../protocol/mod.ts";
import { RoundRobinSelector } from "../router/mod.ts";
import { card, MODEL, until } from "./_test_fixture.ts";
import { ModelRegistry } from "./model_registry.ts";

/** Tokenizer loads that wait until the test lets them finish (or fail). */
class GatedTokenizers extends TokenizerCache {
  readonly pending: { dir: string; resolve: () => void; reject: (e: Error) => void }[] = [];

  override get(dir: string): Promise<ModelTokenizer> {
    return new Promise<void>((resolve, reject) => this.pending.push({ dir, resolve, reject }))
      .then(() => qwen3Tokenizer());
  }
}

async function setup() {
  const store = new MemoryDiscoveryStore();
  const discovery = new MemoryDiscovery(store);
  const workers = new MemoryDiscovery(store);
  const tokenizers = new GatedTokenizers();
  const registry = new ModelRegistry(discovery, {
    namespace: "dynamo",
    tokenizers,
    createSelector: () => new RoundRobinSelector(),
  });
  const controller = new AbortController();
  await registry.start(controller.signal);
  const register = async (instanceId: number, name = MODEL) => {
    const key = discoveryKey("dynamo", "backend", "generate", instanceId);
    const common = { namespace: "dynamo", component: "backend", endpoint: "generate" };
    await workers.put(BUCKETS.instances, key, {
      type: "Endpoint",
      ...common,
      instance_id: instanceId,
      transport: { tcp: `127.0.0.1:${instanceId}/${instanceId.toString(16)}/generate` },
    });
    await workers.put(BUCKETS.models, key, {
      type: "Model",
      ...common,
      instance_id: instanceId,
      card_json: { ...card(), display_name: name, tokenizer_dir: `/tok/${name}` },
    });
  };
  return {
    registry,
    tokenizers,
    register,
    async close() {
      controller.abort();
      await discovery.close();
      await workers.close();
    },
  };
}

Deno.test("ModelRegistry.waitFor() serves a request that arrives while the tokenizer loads", async () => {
  const fx = await setup();
  try {
    await fx.register(0x101);
    await until(() => fx.tokenizers.pending.length === 1, "the tokenizer load to start");
    assert.equal(fx.registry.get(MODEL), undefined);
    assert.ok(fx.registry.isKnown(MODEL));
    const waiting = fx.registry.waitFor(MODEL, 60_000);
    fx.tokenizers.pending[0]!.resolve();
    const model = await waiting;
    assert.equal(model?.name, MODEL);
    assert.deepEqual(model?.allWorkers().map((w) => w.instanceId), [0x101]);
  } finally {
    await fx.close();
  }
});

Deno.test("ModelRegistry.waitFor() answers at once when nothing for the model is loading", async () => {
  const fx = await setup();
  try {
    // Unknown: no wait, even with a long timeout.
    assert.equal(await fx.registry.waitFor("nope", 60_000), undefined);
    await fx.register(0x101);
    await until(() => fx.tokenizers.pending.length === 1, "the tokenizer load to start");
    fx.tokenizers.pending[0]!.resolve();
    await until(() => fx.registry.get(MODEL) !== undefined, "the model to load");
    assert.equal((await fx.registry.waitFor(MODEL, 60_000))?.name, MODEL);
  } finally {
    await fx.close();
  }
});

Deno.test("ModelRegistry.waitFor() ends when the load fails, and the load is retried", async () => {
  const fx = await setup();
  try {
    await fx.register(0x101);
    await until(() => fx.tokenizers.pending.length === 1, "the tokenizer load to start");
    const waiting = fx.registry.waitFor(MODEL, 60_000);
    fx.tokenizers.pending[0]!.reject(new Error("no tokenizer.json"));
    assert.equal(await waiting, undefined);
    assert.ok(fx.registry.isKnown(MODEL), "a model with a card is known: 503, not 404");
    // The next discovery change tries the load again.
    await fx.register(0x102);
    await until(() => fx.tokenizers.pending.length === 2, "the load to be retried");
    fx.tokenizers.pending[1]!.resolve();
    await until(() => fx.registry.get(MODEL) !== undefined, "the model to load");
    assert.deepEqual(fx.registry.get(MODEL)!.allWorkers().map((w) => w.instanceId), [
      0x101,
      0x102,
    ]);
  } finally {
    await fx.close();
  }
});

Deno.test("ModelRegistry.waitFor() gives up at its timeout or when its signal aborts", async () => {
  const fx = await setup();
  try {
    await fx.register(0x101);
    await until(() => fx.tokenizers.pending.length === 1, "the tokenizer load to start");
    assert.equal(await fx.registry.waitFor(MODEL, 20), undefined);
    const controller = new AbortController();
    const waiting = fx.registry.waitFor(MODEL, 60_000, controller.signal);
    controller.abort();
    assert.equal(await waiting, undefined);
    fx.tokenizers.pending[0]!.resolve();
  } finally {
    await fx.close();
  }
});

Deno.test("ModelRegistry: a model's tokenizer load does not hold up another model's workers", async () => {
  const fx = await setup();
  try {
    await fx.register(0x101, "model-a");
    await until(() => fx.tokenizers.pending.length === 1, "model-a's load to start");
    fx.tokenizers.pending[0]!.resolve();
    await until(() => fx.registry.get("model-a") !== undefined, "model-a to load");
    await fx.register(0x201, "model-b"); // its load stays pending
    await until(() => fx.tokenizers.pending.length === 2, "model-b's load to start");
    await fx.register(0x102, "model-a");
    await until(
      () => fx.registry.get("model-a")!.allWorkers().length === 2,
      "the second model-a worker to join while model-b loads",
    );
    assert.equal(fx.registry.get("model-b"), undefined);
    fx.tokenizers.pending[1]!.resolve();
    await until(() => fx.registry.get("model-b") !== undefined, "model-b to load");
  } finally {
    await fx.close();
  }
});
