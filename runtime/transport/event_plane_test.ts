import assert from "node:assert/strict";
import * as zmq from "zeromq";
import { DynamoError } from "../errors/mod.ts";
import { setLogLevel } from "../observability/mod.ts";
import { ManualClock } from "../util/mod.ts";
import { encodeEventMessage, type EventEnvelope } from "./event_envelope.ts";
import { EventPublisher } from "./event_publisher.ts";
import { EventSubscriber } from "./event_subscriber.ts";
import { componentSubject, namespaceSubject } from "./event_subject.ts";
import { decodeMsgpack, encodeMsgpack } from "./frame_codec.ts";
import { waitFor } from "./_test_util.ts";

setLogLevel("off");

interface Received {
  envelope: EventEnvelope;
  event: unknown;
}

interface Gap {
  publisherId: number;
  expected: number;
  received: number;
  topic: string;
}

/** A subscriber that records what it gets. */
function recordingSubscriber(subjectPrefixes: string[]): {
  subscriber: EventSubscriber;
  received: Received[];
  gaps: Gap[];
} {
  const received: Received[] = [];
  const gaps: Gap[] = [];
  const subscriber = new EventSubscriber({
    subjectPrefixes,
    onEvent: (envelope, event) => received.push({ envelope, event }),
    onGap: (publisherId, expected, got, topic) =>
      gaps.push({ publisherId, expected, received: got, topic }),
  });
  return { subscriber, received, gaps };
}

/**
 * ZeroMQ's slow joiner: messages sent before a subscription reaches the publisher are lost.
 * Sends until `arrived` holds, with a bounded deadline, instead of sleeping a fixed time.
 */
async function sendUntil(send: () => unknown, arrived: () => boolean, what: string): Promise<void> {
  const deadline = performance.now() + 5000;
  while (!arrived()) {
    if (performance.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await send();
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function u64(n: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n));
  return b;
}

/** A raw ZeroMQ publisher sending hand-built frames. */
async function rawPublisher(): Promise<{ socket: zmq.Publisher; endpoint: string }> {
  const socket = new zmq.Publisher({ linger: 0 });
  await socket.bind("tcp://127.0.0.1:*");
  return { socket, endpoint: socket.lastEndpoint! };
}

function message(
  publisherId: number,
  sequence: number,
  topic: string,
  event: unknown,
): Uint8Array[] {
  return encodeEventMessage({
    publisherId,
    sequence,
    publishedAtMs: 1,
    topic,
    payload: encodeMsgpack(event),
  });
}

Deno.test("EventPublisher.publish() sends Dynamo's four frames to a raw ZeroMQ subscriber", async () => {
  const clock = new ManualClock(1_700_000_000_000);
  const publisher = await EventPublisher.bind({
    host: "127.0.0.1",
    publisherId: 0x1f_ffff_ffff_fff1,
    clock,
  });
  // Non-blocking reads: a pending receive() can miss wake-ups under Deno (see EventSubscriber).
  const sub = new zmq.Subscriber({ linger: 0, receiveTimeout: 0 });
  try {
    assert.match(publisher.endpoint, /^tcp:\/\/127\.0\.0\.1:\d+$/);
    sub.connect(publisher.endpoint);
    sub.subscribe("namespace.ns.");
    const subject = namespaceSubject("ns", "kv_metrics");
    let frames: Uint8Array[] | undefined;
    const tryReceive = (): void => {
      sub.receive().then((m) => (frames ??= m), () => {});
    };
    await sendUntil(
      () => {
        publisher.publish(subject, { load: 0.5, big: 2n ** 64n - 1n });
        tryReceive();
      },
      () => frames !== undefined,
      "the first event",
    );
    const [topic, id, seq, frame] = frames! as [Uint8Array, Uint8Array, Uint8Array, Uint8Array];
    assert.equal(frames!.length, 4);
    assert.equal(new TextDecoder().decode(topic), "namespace.ns.kv_metrics");
    assert.deepEqual([...id], [0x00, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf1]);
    assert.equal(seq.length, 8);
    const sequence = new DataView(seq.buffer, seq.byteOffset, 8).getBigUint64(0);
    assert.equal(frame[0], 1, "version byte");
    const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
    assert.equal(view.getUint32(1), frame.length - 5, "u32 BE envelope length");
    const envelope = decodeMsgpack(frame.subarray(5)) as Record<string, unknown>;
    assert.deepEqual(Object.keys(envelope), [
      "publisher_id",
      "sequence",
      "published_at",
      "topic",
      "payload",
    ]);
    assert.equal(envelope.publisher_id, 0x1f_ffff_ffff_fff1n); // written as u64, read back as BigInt
    assert.equal(BigInt(envelope.sequence as number), sequence);
    assert.equal(envelope.published_at, 1_700_000_000_000n);
    assert.equal(envelope.topic, "namespace.ns.kv_metrics");
    assert.deepEqual(decodeMsgpack(envelope.payload as Uint8Array), {
      load: 0.5,
      big: 2n ** 64n - 1n,
    });
  } finally {
    sub.close();
    await publisher.close();
  }
});

Deno.test("EventSubscriber receives only subjects under its prefixes, in order", async () => {
  const publisher = await EventPublisher.bind({ host: "127.0.0.1", publisherId: 42 });
  const { subscriber, received, gaps } = recordingSubscriber([
    componentSubject("ns", "backend", ""),
  ]);
  try {
    subscriber.connect(publisher.endpoint);
    const wanted = componentSubject("ns", "backend", "kv-events");
    const warm = componentSubject("ns", "backend", "warm-up");
    await sendUntil(
      () => publisher.publish(warm, "hello"),
      () => received.length > 0,
      "the first event",
    );
    const other = componentSubject("ns", "prefill", "kv-events");
    for (let i = 0; i < 5; i++) {
      publisher.publish(other, { skipped: i });
      publisher.publish(wanted, { i });
    }
    publisher.publish(namespaceSubject("ns", "kv_metrics"), "skipped too");
    publisher.publish(wanted, "last");
    // ZeroMQ keeps one publisher's order: once "last" is in, anything unfiltered would be too.
    await waitFor(() => received.some((r) => r.event === "last"), "the last event");
    const events = received.filter((r) => r.envelope.topic === wanted);
    assert.deepEqual(events.map((r) => r.event), [
      { i: 0 },
      { i: 1 },
      { i: 2 },
      { i: 3 },
      { i: 4 },
      "last",
    ]);
    assert.deepEqual(events.map((r) => r.envelope.sequence), [0, 1, 2, 3, 4, 5]);
    assert.ok(received.every((r) => r.envelope.topic === wanted || r.envelope.topic === warm));
    assert.ok(events.every((r) => r.envelope.publisherId === 42));
    assert.deepEqual(gaps, []);
  } finally {
    await subscriber.close();
    await publisher.close();
  }
});

Deno.test("EventSubscriber keeps receiving after switching publishers", async () => {
  const first = await EventPublisher.bind({ host: "127.0.0.1", publisherId: 1 });
  const second = await EventPublisher.bind({ host: "127.0.0.1", publisherId: 2 });
  const { subscriber, received } = recordingSubscriber(["s."]);
  try {
    subscriber.connect(first.endpoint);
    await sendUntil(
      () => first.publish("s.a", "one"),
      () => received.length > 0,
      "the first publisher",
    );
    subscriber.disconnect(first.endpoint);
    subscriber.connect(second.endpoint);
    await sendUntil(
      () => second.publish("s.a", "two"),
      () => received.some((r) => r.envelope.publisherId === 2),
      "the second publisher",
    );
  } finally {
    await subscriber.close();
    await first.close();
    await second.close();
  }
});

Deno.test("EventSubscriber reports a sequence gap", async () => {
  const raw = await rawPublisher();
  const { subscriber, received, gaps } = recordingSubscriber(["t."]);
  try {
    subscriber.connect(raw.endpoint);
    // Repeating sequence 0 is a restart of the same stream, never a gap.
    await sendUntil(
      () => raw.socket.send(message(7, 0, "t.a", "zero")),
      () => received.length > 0,
      "the first event",
    );
    await raw.socket.send(message(7, 1, "t.a", "one"));
    await raw.socket.send(message(7, 3, "t.a", "three"));
    await waitFor(() => received.some((r) => r.event === "three"), "the event after the gap");
    assert.deepEqual(gaps, [{ publisherId: 7, expected: 2, received: 3, topic: "t.a" }]);
    assert.equal(subscriber.gapCount, 1);
  } finally {
    await subscriber.close();
    raw.socket.close();
  }
});

Deno.test("EventSubscriber treats a restarted publisher as a new stream, not a gap", async () => {
  const raw = await rawPublisher();
  const { subscriber, received, gaps } = recordingSubscriber(["t."]);
  try {
    subscriber.connect(raw.endpoint);
    await sendUntil(
      () => raw.socket.send(message(1, 0, "t.a", "warm")),
      () => received.length > 0,
      "the first event",
    );
    for (const [id, seq] of [[1, 1], [1, 2], [2, 0], [2, 1], [1, 0], [1, 1]] as const) {
      await raw.socket.send(message(id, seq, "t.a", `${id}:${seq}`));
    }
    await waitFor(() => received.length >= 7 && received.at(-1)?.event === "1:1", "every event");
    assert.deepEqual(gaps, []);
  } finally {
    await subscriber.close();
    raw.socket.close();
  }
});

Deno.test("EventSubscriber drops malformed messages and keeps receiving", async () => {
  const raw = await rawPublisher();
  const { subscriber, received } = recordingSubscriber(["t."]);
  try {
    subscriber.connect(raw.endpoint);
    await sendUntil(
      () => raw.socket.send(message(1, 0, "t.a", "warm")),
      () => received.length > 0,
      "the first event",
    );
    const good = message(1, 1, "t.a", "good");
    const badVersion = good[3]!.slice();
    badVersion[0] = 9;
    const badLength = good[3]!.slice();
    badLength[1] = 0xff;
    await raw.socket.send([good[0]!, good[1]!, good[2]!, badVersion]);
    await raw.socket.send([good[0]!, good[1]!, good[2]!, badLength]);
    await raw.socket.send([good[0]!, good[1]!, good[2]!]);
    await raw.socket.send(["t.a", u64(1), u64(1), new Uint8Array([1, 0, 0, 0, 1, 0xc1])]);
    await raw.socket.send(good);
    await waitFor(() => received.some((r) => r.event === "good"), "the good event");
    assert.equal(subscriber.droppedMessages, 4);
    assert.equal(received.length, 2);
  } finally {
    await subscriber.close();
    raw.socket.close();
  }
});

Deno.test("EventPublisher.publish() drops the oldest queued message when the queue is full", async () => {
  const publisher = await EventPublisher.bind({
    host: "127.0.0.1",
    publisherId: 5,
    maxQueuedMessages: 2,
  });
  const { subscriber, received, gaps } = recordingSubscriber(["s."]);
  try {
    subscriber.connect(publisher.endpoint);
    await sendUntil(
      () => publisher.publish("s.warm", 0),
      () => received.length > 0,
      "the first event",
    );
    await publisher.flush();
    // One synchronous burst: the first goes straight to the socket, two fit in the queue.
    for (let i = 0; i < 5; i++) publisher.publish("s.burst", i);
    assert.equal(publisher.droppedMessages, 2);
    await publisher.flush();
    await waitFor(() => received.some((r) => r.event === 4), "the last event of the burst");
    const burst = received.filter((r) => r.envelope.topic === "s.burst");
    assert.deepEqual(burst.map((r) => r.envelope.sequence), [0, 3, 4]);
    assert.deepEqual(gaps, [{ publisherId: 5, expected: 1, received: 3, topic: "s.burst" }]);
  } finally {
    await subscriber.close();
    await publisher.close();
  }
});

Deno.test("EventPublisher.bind() refuses a wildcard host without advertiseHost", async () => {
  await assert.rejects(
    () => EventPublisher.bind({ host: "0.0.0.0", publisherId: 1 }),
    (err: unknown) =>
      err instanceof DynamoError && err.reason === "invalid_option" &&
      /advertiseHost/.test(err.message),
  );
});

Deno.test("EventPublisher.publish() refuses after close", async () => {
  const publisher = await EventPublisher.bind({ host: "127.0.0.1", publisherId: 1 });
  await publisher.close();
  assert.throws(
    () => publisher.publish("a.b", 1),
    (err: unknown) => err instanceof DynamoError && err.reason === "publisher_closed",
  );
});

Deno.test("EventSubscriber.connect() refuses bad endpoints and more than maxEndpoints", async () => {
  const subscriber = new EventSubscriber({
    subjectPrefixes: [""],
    onEvent: () => {},
    maxEndpoints: 1,
  });
  try {
    assert.throws(
      () => subscriber.connect("nats://x"),
      (err: unknown) => err instanceof DynamoError && err.reason === "invalid_endpoint",
    );
    subscriber.connect("tcp://127.0.0.1:1");
    subscriber.connect("tcp://127.0.0.1:1"); // already connected: no-op
    assert.throws(
      () => subscriber.connect("tcp://127.0.0.1:2"),
      (err: unknown) => err instanceof DynamoError && err.reason === "too_many_publishers",
    );
    subscriber.disconnect("tcp://127.0.0.1:1");
    assert.equal(subscriber.endpoints.size, 0);
    subscriber.connect("tcp://127.0.0.1:2");
    assert.deepEqual([...subscriber.endpoints], ["tcp://127.0.0.1:2"]);
  } finally {
    await subscriber.close();
  }
});
