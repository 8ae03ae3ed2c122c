import assert from "node:assert/strict";
import { BUCKETS } from "../protocol/mod.ts";
import { runDiscoveryConformance, sampleEndpoint, sampleModel } from "./conformance.ts";
import { MemoryDiscovery, MemoryDiscoveryStore } from "./memory_discovery.ts";
import { WatchReader } from "./_watch_reader.ts";

runDiscoveryConformance("MemoryDiscovery", () => {
  const store = new MemoryDiscoveryStore();
  const a = new MemoryDiscovery(store);
  const b = new MemoryDiscovery(store);
  return Promise.resolve({
    a,
    b,
    cleanup: async () => {
      await a.close();
      await b.close();
    },
  });
});

Deno.test("MemoryDiscovery.simulateCrash() removes the crashed instance's entries for watchers", async () => {
  const store = new MemoryDiscoveryStore();
  const worker = new MemoryDiscovery(store);
  const frontend = new MemoryDiscovery(store);
  await worker.put(BUCKETS.instances, "dynamo/backend/generate/1", sampleEndpoint(1));
  await frontend.put(BUCKETS.instances, "dynamo/backend/generate/2", sampleEndpoint(2));
  const watch = new WatchReader(frontend, BUCKETS.instances);
  try {
    const initial = [(await watch.next()).key, (await watch.next()).key].sort();
    assert.deepEqual(initial, ["dynamo/backend/generate/1", "dynamo/backend/generate/2"]);
    worker.simulateCrash();
    assert.deepEqual(await watch.next(), { kind: "removed", key: "dynamo/backend/generate/1" });
    assert.deepEqual([...(await frontend.list(BUCKETS.instances)).keys()], [
      "dynamo/backend/generate/2",
    ]);
    await assert.rejects(worker.list(BUCKETS.instances), { errorClass: "unavailable" });
  } finally {
    await watch.stop();
    await frontend.close();
  }
});

Deno.test("MemoryDiscoveryStore.set() refuses entries past maxEntriesPerBucket", async () => {
  const store = new MemoryDiscoveryStore({ maxEntriesPerBucket: 2 });
  const discovery = new MemoryDiscovery(store);
  await discovery.put(BUCKETS.instances, "k/1", sampleEndpoint(1));
  await discovery.put(BUCKETS.instances, "k/2", sampleEndpoint(2));
  await assert.rejects(discovery.put(BUCKETS.instances, "k/3", sampleEndpoint(3)), {
    errorClass: "overloaded",
    reason: "too_many_entries",
  });
  // Replacing an existing key is not growth.
  await discovery.put(BUCKETS.instances, "k/2", sampleEndpoint(2, 9));
  // Another bucket has its own budget.
  await discovery.put(BUCKETS.models, "k/3", sampleModel(3));
  await discovery.close();
});

Deno.test("MemoryDiscovery.delete() leaves entries another instance owns", async () => {
  const store = new MemoryDiscoveryStore();
  const owner = new MemoryDiscovery(store);
  const other = new MemoryDiscovery(store);
  await owner.put(BUCKETS.instances, "k/1", sampleEndpoint(1));
  await other.delete(BUCKETS.instances, "k/1");
  assert.equal((await other.list(BUCKETS.instances)).size, 1);
  await owner.close();
  await other.close();
});

Deno.test("MemoryDiscovery.watch() coalesces changes a slow consumer has not pulled yet", async () => {
  const store = new MemoryDiscoveryStore();
  const discovery = new MemoryDiscovery(store);
  const watch = new WatchReader(discovery, BUCKETS.instances);
  try {
    await discovery.put(BUCKETS.instances, "k/1", sampleEndpoint(1));
    assert.equal((await watch.next()).kind, "added");
    // Many changes before the next pull: only the final state is reported.
    for (let port = 1; port <= 100; port++) {
      await discovery.put(BUCKETS.instances, "k/1", sampleEndpoint(1, port));
    }
    await discovery.put(BUCKETS.instances, "k/2", sampleEndpoint(2));
    await discovery.delete(BUCKETS.instances, "k/2");
    assert.deepEqual(await watch.next(), {
      kind: "added",
      key: "k/1",
      value: sampleEndpoint(1, 100),
    });
    assert.equal(await watch.next(50).catch(() => "none"), "none");
  } finally {
    await watch.stop();
    await discovery.close();
  }
});
