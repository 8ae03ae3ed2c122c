import assert from "node:assert/strict";
import { DynamoError, isConnectFailure } from "../errors/mod.ts";
import { setLogLevel, setLogSink } from "../observability/mod.ts";
import { deferred } from "../util/mod.ts";
import { RequestPlaneClient, type RequestPlaneClientOptions } from "./request_plane_client.ts";
import { RequestPlaneServer, type RequestPlaneServerOptions } from "./request_plane_server.ts";
import { caught, collect, waitFor, within } from "./_test_util.ts";
import { RawServer } from "./_test_raw_peer.ts";

setLogLevel("off");

/** A server and a client on 127.0.0.1, both closed by `close()`. */
async function pair(
  serverOptions: Partial<RequestPlaneServerOptions> = {},
  clientOptions: RequestPlaneClientOptions = {},
): Promise<{
  server: RequestPlaneServer;
  client: RequestPlaneClient;
  target: { host: string; port: number };
  close(): Promise<void>;
}> {
  const server = await RequestPlaneServer.listen({ host: "127.0.0.1", port: 0, ...serverOptions });
  const client = new RequestPlaneClient(clientOptions);
  return {
    server,
    client,
    target: { host: "127.0.0.1", port: server.port },
    close: async () => {
      await client.close();
      await server.close();
    },
  };
}

function assertDynamoError(err: unknown, errorClass: string, reason: string): DynamoError {
  assert.ok(err instanceof DynamoError, `expected a DynamoError, got ${String(err)}`);
  assert.equal(err.errorClass, errorClass, err.message);
  assert.equal(err.reason, reason, err.message);
  return err;
}

Deno.test("RequestPlaneClient.call() streams a handler's items with the request's headers", async () => {
  const p = await pair();
  try {
    p.server.register("generate", async function* (payload, ctx) {
      const { n } = payload as { n: number };
      for (let i = 0; i < n; i++) yield { i, id: ctx.headers["request-id"] };
    });
    const items = await collect(
      p.client.call(p.target, "generate", { n: 3 }, { headers: { "request-id": "r1" } }),
    );
    assert.deepEqual(items, [{ i: 0, id: "r1" }, { i: 1, id: "r1" }, { i: 2, id: "r1" }]);
  } finally {
    await p.close();
  }
});

Deno.test("RequestPlaneClient.call() interleaves many concurrent streams on one connection", async () => {
  const p = await pair({}, { windowItems: 4 });
  try {
    p.server.register("count", async function* (payload) {
      const { tag, n } = payload as { tag: number; n: number };
      for (let i = 0; i < n; i++) {
        yield [tag, i];
        await Promise.resolve();
      }
    });
    const streams = Array.from(
      { length: 50 },
      (_, tag) => collect(p.client.call(p.target, "count", { tag, n: 40 })),
    );
    const results = await Promise.all(streams);
    results.forEach((items, tag) => {
      assert.deepEqual(items, Array.from({ length: 40 }, (_, i) => [tag, i]));
    });
    assert.equal(p.client.connectionCount, 1);
    assert.equal(p.server.connectionCount, 1);
  } finally {
    await p.close();
  }
});

Deno.test("RequestPlaneClient.call() keeps opens in stream-id order when they wait for the write queue", async () => {
  const p = await pair({}, { maxQueuedFrames: 1, maxQueuedBytes: 1024 });
  try {
    p.server.register("size", async function* (payload) {
      yield (payload as string).length;
    });
    const calls = Array.from(
      { length: 60 },
      (_, i) => collect(p.client.call(p.target, "size", "x".repeat(8000 + i))),
    );
    const sizes = await Promise.all(calls);
    assert.deepEqual(sizes, Array.from({ length: 60 }, (_, i) => [8000 + i]));
    assert.equal(p.server.connectionCount, 1);
  } finally {
    await p.close();
  }
});

Deno.test("RequestPlaneClient.call() delivers 10k small items complete and in order", async () => {
  const p = await pair();
  try {
    p.server.register("many", async function* () {
      for (let i = 0; i < 10_000; i++) yield i;
    });
    const items = await collect(p.client.call(p.target, "many", null));
    assert.equal(items.length, 10_000);
    items.forEach((item, i) => assert.equal(item, i));
  } finally {
    await p.close();
  }
});

Deno.test("RequestPlaneClient.call() round-trips BigInt values and keeps numbers as numbers", async () => {
  const p = await pair();
  try {
    p.server.register("echo", async function* (payload) {
      yield payload;
    });
    const payload = {
      hash: 2n ** 63n + 5n,
      huge: -(2n ** 80n),
      small: 3n,
      count: 2 ** 40,
      ratio: 0.25,
    };
    const [echoed] = await collect(p.client.call(p.target, "echo", payload));
    assert.deepEqual(echoed, payload);
    assert.equal(typeof (echoed as { count: unknown }).count, "number");
  } finally {
    await p.close();
  }
});

Deno.test("RequestPlaneClient.call() breaking out of the loop stops the server's generator", async () => {
  const p = await pair();
  try {
    const finallyRan = deferred<void>();
    p.server.register("endless", async function* () {
      try {
        for (let i = 0;; i++) yield i;
      } finally {
        finallyRan.resolve();
      }
    });
    const gate = deferred<void>();
    p.server.register("gated", async function* () {
      yield 1;
      await gate.promise;
      yield* [2, 3];
    });
    const other = p.client.call(p.target, "gated", null)[Symbol.asyncIterator]();
    assert.deepEqual(await other.next(), { done: false, value: 1 });
    for await (const item of p.client.call(p.target, "endless", null)) {
      if (item === 5) break;
    }
    await within(finallyRan.promise, "the handler's finally");
    await waitFor(() => p.server.inflightStreams === 1, "the cancelled stream to go");
    gate.resolve();
    assert.deepEqual(await other.next(), { done: false, value: 2 });
    assert.deepEqual(await other.next(), { done: false, value: 3 });
    assert.deepEqual(await other.next(), { done: true, value: undefined });
    assert.equal(p.client.connectionCount, 1);
  } finally {
    await p.close();
  }
});

Deno.test("RequestPlaneClient.call() aborting the signal aborts the handler's signal", async () => {
  const p = await pair();
  try {
    const handlerAborted = deferred<unknown>();
    const started = deferred<void>();
    p.server.register("wait", async function* (_payload, ctx) {
      yield "started";
      started.resolve();
      await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve, { once: true }));
      handlerAborted.resolve(ctx.signal.reason);
    });
    const controller = new AbortController();
    const err = await caught(async () => {
      for await (const _ of p.client.call(p.target, "wait", null, { signal: controller.signal })) {
        await started.promise;
        controller.abort();
      }
    });
    assertDynamoError(err, "cancelled", "aborted");
    const reason = await within(handlerAborted.promise, "the handler's abort");
    assertDynamoError(reason, "cancelled", "cancelled_by_client");
  } finally {
    await p.close();
  }
});

Deno.test("RequestPlaneClient.call() with a slow consumer keeps the handler at most one window ahead", async () => {
  const windowItems = 8;
  const p = await pair({}, { windowItems });
  try {
    let produced = 0;
    let consumed = 0;
    let maxAhead = 0;
    p.server.register("firehose", async function* () {
      for (;;) {
        produced++;
        maxAhead = Math.max(maxAhead, produced - consumed);
        yield produced;
      }
    });
    p.server.register("ping", async function* () {
      yield "pong";
    });
    const iterator = p.client.call(p.target, "firehose", null)[Symbol.asyncIterator]();
    const take = async (n: number): Promise<void> => {
      for (let i = 0; i < n; i++) {
        const next = await iterator.next();
        consumed++;
        assert.equal(next.value, consumed);
      }
    };
    const creditStep = windowItems / 2;
    for (const batch of [1, 3, 4, 7, 1, 8]) {
      await take(batch);
      // Credit goes back in steps of half the window, so the server may run this far.
      const granted = windowItems + Math.floor(consumed / creditStep) * creditStep;
      await waitFor(() => produced === granted, `the handler to produce ${granted} items`);
      // A full round trip on the same connection: the handler still has not run further.
      assert.deepEqual(await collect(p.client.call(p.target, "ping", null)), ["pong"]);
      assert.equal(produced, granted);
    }
    assert.ok(
      maxAhead <= windowItems,
      `handler ran ${maxAhead} items ahead with a window of ${windowItems}`,
    );
    await iterator.return(undefined);
  } finally {
    await p.close();
  }
});

Deno.test("RequestPlaneClient.call() refuses an oversized request and keeps the connection", async () => {
  const p = await pair({}, { maxFrameBytes: 1024 });
  try {
    p.server.register("echo", async function* (payload) {
      yield payload;
    });
    assert.deepEqual(await collect(p.client.call(p.target, "echo", "small")), ["small"]);
    const err = await caught(() => collect(p.client.call(p.target, "echo", "x".repeat(2000))));
    assertDynamoError(err, "invalid_request", "frame_too_large");
    assert.deepEqual(await collect(p.client.call(p.target, "echo", "again")), ["again"]);
    assert.equal(p.server.connectionCount, 1);
  } finally {
    await p.close();
  }
});

Deno.test("RequestPlaneClient.call() fails with unavailable when the server drops an oversized frame", async () => {
  const p = await pair({ maxFrameBytes: 1024 }, { maxFrameBytes: 64 * 1024 });
  try {
    p.server.register("echo", async function* (payload) {
      yield payload;
    });
    assert.deepEqual(await collect(p.client.call(p.target, "echo", "small")), ["small"]);
    const err = await caught(() => collect(p.client.call(p.target, "echo", "x".repeat(2000))));
    assertDynamoError(err, "unavailable", "disconnected");
    await waitFor(() => p.server.connectionCount === 0, "the server to drop the connection");
    // The next call reconnects.
    assert.deepEqual(await collect(p.client.call(p.target, "echo", "after")), ["after"]);
  } finally {
    await p.close();
  }
});

Deno.test("RequestPlaneClient.call() surfaces handler errors with their class and reason", async () => {
  const p = await pair();
  try {
    p.server.register("busy", async function* () {
      yield "partial";
      throw new DynamoError(
        "overloaded",
        "engine_queue_full",
        "Cannot accept request: queue is full",
      );
    });
    p.server.register("bug", async function* () {
      yield* [];
      throw new TypeError("secret detail: undefined is not a function");
    });
    const items: unknown[] = [];
    const busy = await caught(async () => {
      for await (const item of p.client.call(p.target, "busy", null)) items.push(item);
    });
    assert.deepEqual(items, ["partial"]);
    assert.equal(
      assertDynamoError(busy, "overloaded", "engine_queue_full").message,
      "Cannot accept request: queue is full",
    );
    const logged: string[] = [];
    const previousSink = setLogSink((line) => logged.push(line));
    setLogLevel("error");
    let bug: DynamoError;
    try {
      const err = await caught(() => collect(p.client.call(p.target, "bug", null)));
      bug = assertDynamoError(err, "internal", "unexpected");
    } finally {
      setLogLevel("off");
      setLogSink(previousSink);
    }
    // The client gets a generic message; the detail is in the worker's log.
    assert.equal(bug.message, 'Internal error in endpoint "bug"; see the worker\'s log');
    assert.ok(logged.some((line) => line.includes("secret detail")), logged.join("\n"));
    const missing = await caught(() => collect(p.client.call(p.target, "nope", null)));
    assertDynamoError(missing, "not_found", "unknown_endpoint");
  } finally {
    await p.close();
  }
});

Deno.test("RequestPlaneClient.call() to a closed port fails with connect_failed", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const client = new RequestPlaneClient();
  try {
    const err = await caught(() =>
      collect(client.call({ host: "127.0.0.1", port }, "generate", null))
    );
    const e = assertDynamoError(err, "unavailable", "connect_failed");
    assert.equal(e.message, `Cannot connect to 127.0.0.1:${port}: connection refused`);
    assert.ok(isConnectFailure(e));
    assert.equal(client.connectionCount, 0);
  } finally {
    await client.close();
  }
});

Deno.test("RequestPlaneClient.call() fails with connect_timeout when the server never says hello", async () => {
  const raw = new RawServer((peer) => peer.waitClosed());
  const client = new RequestPlaneClient({ connectTimeoutMs: 100 });
  try {
    const err = await caught(() =>
      collect(client.call({ host: "127.0.0.1", port: raw.port }, "generate", null))
    );
    assertDynamoError(err, "unavailable", "connect_timeout");
    assert.ok(isConnectFailure(err));
  } finally {
    await client.close();
    await raw.close();
  }
});

Deno.test("RequestPlaneClient.call() fails with disconnected when the server dies mid-stream", async () => {
  const raw = new RawServer(async (peer) => {
    await peer.send({ t: "hello", v: 1 });
    const open = await peer.receiveType("open");
    await peer.send({ t: "item", s: open.s, data: "first" });
    peer.close(); // as if the process died
  });
  const client = new RequestPlaneClient();
  try {
    const items: unknown[] = [];
    const err = await caught(async () => {
      for await (
        const item of client.call({ host: "127.0.0.1", port: raw.port }, "generate", null)
      ) {
        items.push(item);
      }
    });
    assert.deepEqual(items, ["first"]);
    const e = assertDynamoError(err, "unavailable", "disconnected");
    assert.ok(!isConnectFailure(e));
    assert.equal(client.connectionCount, 0);
  } finally {
    await client.close();
    await raw.close();
  }
});

Deno.test("RequestPlaneClient.call() fails with disconnected when the server stops answering heartbeats", async () => {
  const raw = new RawServer(async (peer) => {
    await peer.send({ t: "hello", v: 1 });
    await peer.waitClosed(); // reads pings, never answers
  });
  const client = new RequestPlaneClient({ heartbeatMs: 20 });
  try {
    const err = await within(
      caught(() => collect(client.call({ host: "127.0.0.1", port: raw.port }, "generate", null))),
      "the heartbeat failure",
    );
    const e = assertDynamoError(err, "unavailable", "disconnected");
    assert.match(e.message, /nothing received for \d+ ms/);
  } finally {
    await client.close();
    await raw.close();
  }
});

Deno.test("RequestPlaneClient closes a connection idle for idleTimeoutMs and reconnects on next use", async () => {
  const p = await pair({}, { idleTimeoutMs: 50, heartbeatMs: 10 });
  try {
    p.server.register("one", async function* () {
      yield 1;
    });
    assert.deepEqual(await collect(p.client.call(p.target, "one", null)), [1]);
    assert.equal(p.client.connectionCount, 1);
    await waitFor(
      () => p.client.connectionCount === 0 && p.server.connectionCount === 0,
      "the idle close",
    );
    assert.deepEqual(await collect(p.client.call(p.target, "one", null)), [1]);
  } finally {
    await p.close();
  }
});

Deno.test("RequestPlaneClient.close() fails open streams with client_closed", async () => {
  const p = await pair();
  try {
    p.server.register("forever", async function* (_payload, ctx) {
      yield "started";
      await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve, { once: true }));
    });
    const iterator = p.client.call(p.target, "forever", null)[Symbol.asyncIterator]();
    assert.deepEqual(await iterator.next(), { done: false, value: "started" });
    const pending = caught(() => iterator.next());
    await p.client.close();
    assertDynamoError(await pending, "cancelled", "client_closed");
    await waitFor(() => p.server.inflightStreams === 0, "the server to cancel the stream");
    assertDynamoError(
      await caught(() => collect(p.client.call(p.target, "forever", null))),
      "unavailable",
      "client_closed",
    );
  } finally {
    await p.close();
  }
});

Deno.test("RequestPlaneClient closes the connection when a frame header exceeds its maxFrameBytes", async () => {
  const p = await pair({ maxFrameBytes: 64 * 1024 }, { maxFrameBytes: 1024 });
  try {
    p.server.register("big", async function* () {
      yield "ok";
      yield "x".repeat(2000);
    });
    const items: unknown[] = [];
    const err = await caught(async () => {
      for await (const item of p.client.call(p.target, "big", null)) items.push(item);
    });
    assert.deepEqual(items, ["ok"]);
    const e = assertDynamoError(err, "unavailable", "protocol_error");
    assert.match(e.message, /exceeds the limit of 1024 bytes/);
    await waitFor(() => p.server.connectionCount === 0, "the server to see the close");
  } finally {
    await p.close();
  }
});
