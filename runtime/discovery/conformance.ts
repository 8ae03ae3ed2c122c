import assert from "node:assert/strict";
import {
  BUCKETS,
  discoveryKey,
  type EndpointInstance,
  type EventChannelInstance,
  type ModelInstance,
} from "../protocol/mod.ts";
import type { DiscoveryBackend, DiscoveryEvent } from "./discovery.ts";
import { WatchReader } from "./_watch_reader.ts";

/** Two backends that share one store (two "processes"), and how to tear them down. */
export interface ConformancePair {
  readonly a: DiscoveryBackend;
  readonly b: DiscoveryBackend;
  cleanup(): Promise<void>;
}

/** An Endpoint record as a worker registers it. */
export function sampleEndpoint(instanceId: number, port = 40_000): EndpointInstance {
  return {
    type: "Endpoint",
    namespace: "dynamo",
    component: "backend",
    endpoint: "generate",
    instance_id: instanceId,
    transport: { tcp: `127.0.0.1:${port}/${instanceId.toString(16)}/generate` },
  };
}

/** A Model record (model card) as a worker registers it once its engine is ready. */
export function sampleModel(instanceId: number): ModelInstance {
  return {
    type: "Model",
    namespace: "dynamo",
    component: "backend",
    endpoint: "generate",
    instance_id: instanceId,
    card_json: {
      display_name: "Qwen/Qwen3-0.6B",
      source_path: "Qwen/Qwen3-0.6B",
      tokenizer_dir: "/models/qwen3",
      chat_template_file: null,
      context_length: 32_768,
      kv_cache_block_size: 16,
      model_type: 3,
      engine: "mocker",
      role: "agg",
      eos_token_ids: [151_645],
      runtime_config: {
        total_kv_blocks: 8_192,
        max_num_seqs: 256,
        max_num_batched_tokens: 8_192,
        data_parallel_size: 1,
      },
    },
  };
}

/** An EventChannel record as a KV-event publisher registers it. */
export function sampleEventChannel(instanceId: number): EventChannelInstance {
  return {
    type: "EventChannel",
    namespace: "dynamo",
    component: "backend",
    topic: "kv_events",
    instance_id: instanceId,
    transport: { kind: "zmq", config: { endpoint: "tcp://127.0.0.1:5557" } },
  };
}

function endpointKey(instanceId: number): string {
  return discoveryKey("dynamo", "backend", "generate", instanceId);
}

/** Runs `body` with a fresh pair, always cleaning up (so sanitizers see no leaks on failure). */
async function withPair(
  factory: () => Promise<ConformancePair>,
  body: (pair: ConformancePair) => Promise<void>,
): Promise<void> {
  const pair = await factory();
  try {
    await body(pair);
  } finally {
    await pair.cleanup();
  }
}

/** Like `withPair`, plus a watch of `v1/instances` from `b` that is stopped afterwards. */
function withWatch(
  factory: () => Promise<ConformancePair>,
  body: (pair: ConformancePair, watch: WatchReader) => Promise<void>,
): Promise<void> {
  return withPair(factory, async (pair) => {
    const watch = new WatchReader(pair.b, BUCKETS.instances);
    try {
      await body(pair, watch);
    } finally {
      await watch.stop();
    }
  });
}

/**
 * Registers the behaviour every DiscoveryBackend must have as Deno tests named
 * `{name}: …`. `factory` returns two backends over one shared store (`a` writes, `b`
 * observes, as a worker and a frontend would).
 */
export function runDiscoveryConformance(
  name: string,
  factory: () => Promise<ConformancePair>,
): void {
  Deno.test(`${name}: put() then list() round-trips each DiscoveryInstance type`, () =>
    withPair(factory, async ({ a, b }) => {
      const endpoint = sampleEndpoint(0x1a2b);
      const model = sampleModel(0x1a2b);
      const channel = sampleEventChannel(0x1a2b);
      await a.put(BUCKETS.instances, endpointKey(0x1a2b), endpoint);
      await a.put(BUCKETS.models, endpointKey(0x1a2b), model);
      await a.put(BUCKETS.eventChannels, "dynamo/backend/kv_events/1a2b", channel);
      for (const backend of [a, b]) {
        assert.deepEqual(
          await backend.list(BUCKETS.instances),
          new Map([[endpointKey(0x1a2b), endpoint]]),
        );
        assert.deepEqual(
          await backend.list(BUCKETS.models),
          new Map([[endpointKey(0x1a2b), model]]),
        );
        assert.deepEqual(
          await backend.list(BUCKETS.eventChannels),
          new Map([["dynamo/backend/kv_events/1a2b", channel]]),
        );
      }
    }));

  Deno.test(`${name}: put() of an existing key replaces its value`, () =>
    withPair(factory, async ({ a, b }) => {
      await a.put(BUCKETS.instances, endpointKey(7), sampleEndpoint(7, 1111));
      await a.put(BUCKETS.instances, endpointKey(7), sampleEndpoint(7, 2222));
      assert.deepEqual(
        await b.list(BUCKETS.instances),
        new Map([[endpointKey(7), sampleEndpoint(7, 2222)]]),
      );
    }));

  Deno.test(`${name}: delete() removes the entry for every reader`, () =>
    withPair(factory, async ({ a, b }) => {
      await a.put(BUCKETS.instances, endpointKey(1), sampleEndpoint(1));
      await a.put(BUCKETS.instances, endpointKey(2), sampleEndpoint(2));
      await a.delete(BUCKETS.instances, endpointKey(1));
      const expected = new Map([[endpointKey(2), sampleEndpoint(2)]]);
      assert.deepEqual(await a.list(BUCKETS.instances), expected);
      assert.deepEqual(await b.list(BUCKETS.instances), expected);
      // Absent keys are a no-op, not an error.
      await a.delete(BUCKETS.instances, endpointKey(1));
      await a.delete(BUCKETS.instances, endpointKey(99));
      assert.deepEqual(await b.list(BUCKETS.instances), expected);
    }));

  Deno.test(`${name}: list() of an empty bucket is empty`, () =>
    withPair(factory, async ({ b }) => {
      assert.equal((await b.list(BUCKETS.instances)).size, 0);
      assert.equal((await b.list(BUCKETS.eventChannels)).size, 0);
    }));

  Deno.test(
    `${name}: watch() sees existing, later, changed and deleted entries of another backend`,
    () =>
      withPair(factory, async ({ a, b }) => {
        await a.put(BUCKETS.instances, endpointKey(1), sampleEndpoint(1));
        const watch = new WatchReader(b, BUCKETS.instances);
        try {
          assert.deepEqual(await watch.next(), added(endpointKey(1), sampleEndpoint(1)));
          await a.put(BUCKETS.instances, endpointKey(2), sampleEndpoint(2));
          assert.deepEqual(await watch.next(), added(endpointKey(2), sampleEndpoint(2)));
          await a.put(BUCKETS.instances, endpointKey(1), sampleEndpoint(1, 4242));
          assert.deepEqual(await watch.next(), added(endpointKey(1), sampleEndpoint(1, 4242)));
          await a.delete(BUCKETS.instances, endpointKey(2));
          assert.deepEqual(await watch.next(), { kind: "removed", key: endpointKey(2) });
          // Other buckets do not leak into this watch.
          await a.put(BUCKETS.models, endpointKey(3), sampleModel(3));
          await a.delete(BUCKETS.instances, endpointKey(1));
          assert.deepEqual(await watch.next(), { kind: "removed", key: endpointKey(1) });
        } finally {
          await watch.stop();
        }
      }),
  );

  Deno.test(`${name}: watch() lists every existing entry first`, () =>
    withWatch(factory, async ({ a }, watch) => {
      // The watch was created but not yet pulled: its snapshot is taken at the first pull.
      const ids = [1, 2, 3, 4, 5];
      for (const id of ids) await a.put(BUCKETS.instances, endpointKey(id), sampleEndpoint(id));
      const seen = new Map<string, unknown>();
      for (const _ of ids) {
        const event = await watch.next();
        assert.equal(event.kind, "added");
        if (event.kind === "added") seen.set(event.key, event.value);
      }
      assert.deepEqual(seen, new Map(ids.map((id) => [endpointKey(id), sampleEndpoint(id)])));
    }));

  Deno.test(`${name}: watch() by two watchers on one backend both see a change`, () =>
    withWatch(factory, async ({ a, b }, first) => {
      const second = new WatchReader(b, BUCKETS.instances);
      try {
        await a.put(BUCKETS.instances, endpointKey(5), sampleEndpoint(5));
        const expected = added(endpointKey(5), sampleEndpoint(5));
        assert.deepEqual(await first.next(), expected);
        assert.deepEqual(await second.next(), expected);
      } finally {
        await second.stop();
      }
    }));

  Deno.test(`${name}: close() removes every entry the closed backend owned`, () =>
    withPair(factory, async ({ a, b }) => {
      await a.put(BUCKETS.instances, endpointKey(1), sampleEndpoint(1));
      await a.put(BUCKETS.models, endpointKey(1), sampleModel(1));
      await a.put(BUCKETS.eventChannels, "dynamo/backend/kv_events/1", sampleEventChannel(1));
      await b.put(BUCKETS.instances, endpointKey(2), sampleEndpoint(2));
      const watch = new WatchReader(b, BUCKETS.models);
      try {
        assert.deepEqual(await watch.next(), added(endpointKey(1), sampleModel(1)));
        await a.close();
        assert.deepEqual(await watch.next(), { kind: "removed", key: endpointKey(1) });
      } finally {
        await watch.stop();
      }
      assert.deepEqual(
        await b.list(BUCKETS.instances),
        new Map([[endpointKey(2), sampleEndpoint(2)]]),
      );
      assert.equal((await b.list(BUCKETS.models)).size, 0);
      assert.equal((await b.list(BUCKETS.eventChannels)).size, 0);
      await assert.rejects(a.put(BUCKETS.instances, endpointKey(3), sampleEndpoint(3)));
    }));

  Deno.test(`${name}: close() ends the closed backend's own watches`, () =>
    withPair(factory, async ({ a }) => {
      const watch = new WatchReader(a, BUCKETS.instances);
      await a.put(BUCKETS.instances, endpointKey(1), sampleEndpoint(1));
      assert.equal((await watch.next()).kind, "added");
      await a.close();
      assert.equal(await watch.ended(), true);
    }));

  Deno.test(`${name}: watch() ends when its signal aborts`, () =>
    withWatch(factory, async ({ a }, watch) => {
      await a.put(BUCKETS.instances, endpointKey(1), sampleEndpoint(1));
      assert.equal((await watch.next()).kind, "added");
      await watch.stop();
      assert.equal(await watch.ended(0), true);
    }));

  Deno.test(`${name}: watch() with an already aborted signal yields nothing`, () =>
    withPair(factory, async ({ a, b }) => {
      await a.put(BUCKETS.instances, endpointKey(1), sampleEndpoint(1));
      const events: DiscoveryEvent[] = [];
      for await (const event of b.watch(BUCKETS.instances, AbortSignal.abort())) events.push(event);
      assert.deepEqual(events, []);
    }));

  Deno.test(`${name}: keys with / - . _ % space and non-ASCII characters round-trip`, () =>
    withWatch(factory, async ({ a, b }, watch) => {
      const keys = [
        "dynamo/backend/generate/1a2b",
        "my-ns.prod/pre_fill/gen.erate/ff",
        "ns/comp/ep/7/lora%adapter v2",
        "名前空間/コンポーネント/ep/1",
      ];
      for (const [i, key] of keys.entries()) {
        await a.put(BUCKETS.instances, key, sampleEndpoint(i + 1));
      }
      const listed = await b.list(BUCKETS.instances);
      assert.deepEqual([...listed.keys()].sort(), [...keys].sort());
      const watched = new Set<string>();
      for (const _ of keys) watched.add((await watch.next()).key);
      assert.deepEqual([...watched].sort(), [...keys].sort());
      await a.delete(BUCKETS.instances, keys[1]!);
      assert.deepEqual(await watch.next(), { kind: "removed", key: keys[1] });
    }));

  Deno.test(`${name}: invalid input is rejected as invalid_request`, () =>
    withPair(factory, async ({ a }) => {
      const invalid = { errorClass: "invalid_request" };
      await assert.rejects(a.put(BUCKETS.instances, "", sampleEndpoint(1)), invalid);
      await assert.rejects(a.put(BUCKETS.instances, "k".repeat(300), sampleEndpoint(1)), invalid);
      const notAnInstance = { type: "Endpoint" } as unknown as EndpointInstance;
      await assert.rejects(a.put(BUCKETS.instances, "dynamo/x/y/1", notAnInstance), invalid);
      // deno-lint-ignore no-explicit-any
      await assert.rejects(a.put("../../etc" as any, "dynamo/x/y/1", sampleEndpoint(1)), invalid);
      assert.equal((await a.list(BUCKETS.instances)).size, 0);
    }));
}

function added(key: string, value: unknown): DiscoveryEvent {
  return { kind: "added", key, value } as DiscoveryEvent;
}
