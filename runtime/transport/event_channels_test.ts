import assert from "node:assert/strict";
import { MemoryDiscovery, MemoryDiscoveryStore } from "../discovery/mod.ts";
import { setLogLevel } from "../observability/mod.ts";
import { BUCKETS } from "../protocol/mod.ts";
import { followEventChannels, registerEventChannel } from "./event_channels.ts";
import { EventPublisher } from "./event_publisher.ts";
import { EventSubscriber } from "./event_subscriber.ts";
import { waitFor, within } from "./_test_util.ts";

setLogLevel("off");

/** Memory discovery; `.close()` is left to the test's process exit (nothing to leak). */
function memoryDiscovery(): MemoryDiscovery {
  return new MemoryDiscovery(new MemoryDiscoveryStore());
}

Deno.test("registerEventChannel() writes Dynamo's EventChannel record and unregister() deletes it", async () => {
  const discovery = memoryDiscovery();
  const registration = await registerEventChannel(discovery, {
    namespace: "dynamo",
    component: "backend",
    topic: "kv-events",
    instanceId: 0x694d98147d54b,
    endpoint: "tcp://10.0.0.5:41234",
  });
  assert.equal(registration.key, "dynamo/backend/kv-events/694d98147d54b");
  const entries = await discovery.list(BUCKETS.eventChannels);
  assert.deepEqual(entries.get(registration.key), {
    type: "EventChannel",
    namespace: "dynamo",
    component: "backend",
    topic: "kv-events",
    instance_id: 0x694d98147d54b,
    transport: { kind: "zmq", config: { endpoint: "tcp://10.0.0.5:41234" } },
  });
  await registration.unregister();
  assert.equal((await discovery.list(BUCKETS.eventChannels)).size, 0);
});

Deno.test("followEventChannels() connects to publishers as they appear and disconnects as they go", async () => {
  const discovery = memoryDiscovery();
  const publisher = await EventPublisher.bind({ host: "127.0.0.1", publisherId: 11 });
  const events: unknown[] = [];
  const subscriber = new EventSubscriber({
    subjectPrefixes: ["namespace.ns."],
    onEvent: (_envelope, event) => events.push(event),
  });
  const controller = new AbortController();
  // Records the follower must ignore: another namespace, and another topic.
  await registerEventChannel(discovery, {
    namespace: "other",
    component: "backend",
    topic: "kv-events",
    instanceId: 12,
    endpoint: "tcp://127.0.0.1:1",
  });
  await registerEventChannel(discovery, {
    namespace: "ns",
    component: "backend",
    topic: "kv_metrics",
    instanceId: 13,
    endpoint: "tcp://127.0.0.1:2",
  });
  const following = followEventChannels(discovery, subscriber, {
    namespace: "ns",
    topic: "kv-events",
    signal: controller.signal,
  });
  try {
    const registration = await registerEventChannel(discovery, {
      namespace: "ns",
      component: "backend",
      topic: "kv-events",
      instanceId: 11,
      endpoint: publisher.endpoint,
    });
    await waitFor(() => subscriber.endpoints.has(publisher.endpoint), "the follower to connect");
    assert.deepEqual([...subscriber.endpoints], [publisher.endpoint]);
    const deadline = performance.now() + 5000;
    while (events.length === 0 && performance.now() < deadline) {
      publisher.publish("namespace.ns.component.backend.kv-events", "hello"); // until the slow joiner joins
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal(events[0], "hello");
    await registration.unregister();
    await waitFor(() => subscriber.endpoints.size === 0, "the follower to disconnect");
    // A publisher that comes back is followed again; stopping the follower disconnects it.
    await registerEventChannel(discovery, {
      namespace: "ns",
      component: "backend",
      topic: "kv-events",
      instanceId: 11,
      endpoint: publisher.endpoint,
    });
    await waitFor(() => subscriber.endpoints.size === 1, "the follower to reconnect");
  } finally {
    controller.abort();
    await within(following, "the follower to stop");
    assert.equal(subscriber.endpoints.size, 0);
    await subscriber.close();
    await publisher.close();
  }
});

Deno.test("followEventChannels() connects once to a publisher that serves several topics", async () => {
  const discovery = memoryDiscovery();
  const subscriber = new EventSubscriber({ subjectPrefixes: [""], onEvent: () => {} });
  const controller = new AbortController();
  const following = followEventChannels(discovery, subscriber, {
    namespace: "ns",
    signal: controller.signal,
  });
  try {
    const spec = {
      namespace: "ns",
      component: "backend",
      instanceId: 21,
      endpoint: "tcp://127.0.0.1:3",
    };
    const kv = await registerEventChannel(discovery, { ...spec, topic: "kv-events" });
    const load = await registerEventChannel(discovery, { ...spec, topic: "kv_metrics" });
    await waitFor(() => subscriber.endpoints.size === 1, "the follower to connect");
    await kv.unregister();
    await load.unregister();
    await waitFor(() => subscriber.endpoints.size === 0, "the follower to disconnect");
  } finally {
    controller.abort();
    await within(following, "the follower to stop");
    await subscriber.close();
  }
});
