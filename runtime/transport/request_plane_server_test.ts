import assert from "node:assert/strict";
import { DynamoError } from "../errors/mod.ts";
import { setLogLevel } from "../observability/mod.ts";
import { deferred } from "../util/mod.ts";
import { RequestPlaneClient } from "./request_plane_client.ts";
import { RequestPlaneServer, type RequestPlaneServerOptions } from "./request_plane_server.ts";
import { caught, collect, within } from "./_test_util.ts";
import { RawPeer } from "./_test_raw_peer.ts";

setLogLevel("off");

function listen(options: Partial<RequestPlaneServerOptions> = {}): Promise<RequestPlaneServer> {
  return RequestPlaneServer.listen({ host: "127.0.0.1", port: 0, ...options });
}

/** A raw client that has exchanged hellos with `server`. */
async function rawClient(server: RequestPlaneServer): Promise<RawPeer> {
  const peer = new RawPeer(await Deno.connect({ hostname: "127.0.0.1", port: server.port }));
  assert.deepEqual(await peer.receive(), { t: "hello", v: 1 });
  await peer.send({ t: "hello", v: 1 });
  return peer;
}

function open(s: number, endpoint: string, window = 4): Record<string, unknown> {
  return { t: "open", s, endpoint, headers: {}, payload: null, window };
}

function assertDynamoError(err: unknown, errorClass: string, reason: string): DynamoError {
  assert.ok(err instanceof DynamoError, `expected a DynamoError, got ${String(err)}`);
  assert.equal(err.errorClass, errorClass, err.message);
  assert.equal(err.reason, reason, err.message);
  return err;
}

/** A handler that yields "started" and then waits for its signal; reports the abort reason. */
function waitingHandler(aborted: { resolve(reason: unknown): void }) {
  return async function* (_payload: unknown, ctx: { signal: AbortSignal }): AsyncIterable<unknown> {
    yield "started";
    await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve, { once: true }));
    aborted.resolve(ctx.signal.reason);
  };
}

Deno.test("RequestPlaneServer.listen() binds a free port and reports it", async () => {
  const server = await listen();
  try {
    assert.equal(server.host, "127.0.0.1");
    assert.ok(server.port > 0);
    const err = await caught(() => listen({ port: server.port }));
    const e = assertDynamoError(err, "unavailable", "listen_failed");
    assert.equal(e.message, `Cannot listen on 127.0.0.1:${server.port}: address in use`);
  } finally {
    await server.close();
  }
});

Deno.test("RequestPlaneServer.listen() rejects a limit that is not a positive integer", async () => {
  const err = await caught(() => listen({ maxFrameBytes: 0 }));
  const e = assertDynamoError(err, "invalid_request", "invalid_option");
  assert.match(e.message, /maxFrameBytes must be a positive integer, got 0/);
});

Deno.test("RequestPlaneServer.register() refuses a second handler for an endpoint", async () => {
  const server = await listen();
  try {
    server.register("generate", async function* () {});
    assert.throws(() => server.register("generate", async function* () {}), /already registered/);
  } finally {
    await server.close();
  }
});

Deno.test("RequestPlaneServer.close() lets in-flight streams finish and refuses new ones while draining", async () => {
  const server = await listen();
  const client = new RequestPlaneClient();
  try {
    const release = deferred<void>();
    server.register("slow", async function* () {
      yield 1;
      await release.promise;
      yield 2;
    });
    const target = { host: "127.0.0.1", port: server.port };
    const iterator = client.call(target, "slow", null)[Symbol.asyncIterator]();
    assert.deepEqual(await iterator.next(), { done: false, value: 1 });
    const closed = server.close({ drainMs: 10_000 });
    // New streams on the existing connection are refused while the old one drains.
    const refused = await caught(() => collect(client.call(target, "slow", null)));
    assert.equal(
      assertDynamoError(refused, "unavailable", "draining").message,
      "Cannot open stream: the worker is shutting down",
    );
    assert.equal(server.inflightStreams, 1);
    release.resolve();
    assert.deepEqual(await iterator.next(), { done: false, value: 2 });
    assert.deepEqual(await iterator.next(), { done: true, value: undefined });
    await within(closed, "close() after the drain");
    assert.equal(server.connectionCount, 0);
  } finally {
    await client.close();
    await server.close();
  }
});

Deno.test("RequestPlaneServer.close() cancels streams still running after drainMs", async () => {
  const server = await listen();
  const client = new RequestPlaneClient();
  try {
    const aborted = deferred<unknown>();
    server.register("forever", waitingHandler(aborted));
    const iterator = client.call({ host: "127.0.0.1", port: server.port }, "forever", null)
      [Symbol.asyncIterator]();
    assert.deepEqual(await iterator.next(), { done: false, value: "started" });
    const failed = caught(() => iterator.next());
    await within(server.close({ drainMs: 20 }), "close()");
    assertDynamoError(await aborted.promise, "cancelled", "server_shutdown");
    assertDynamoError(await failed, "cancelled", "cancelled_by_server");
  } finally {
    await client.close();
    await server.close();
  }
});

Deno.test("RequestPlaneServer.close() gives up on a handler that ignores cancellation after closeGraceMs", async () => {
  const server = await listen({ closeGraceMs: 30 });
  const client = new RequestPlaneClient();
  const never = deferred<void>();
  try {
    server.register("stubborn", async function* () {
      yield "started";
      await never.promise; // ignores ctx.signal
    });
    const iterator = client.call({ host: "127.0.0.1", port: server.port }, "stubborn", null)
      [Symbol.asyncIterator]();
    assert.deepEqual(await iterator.next(), { done: false, value: "started" });
    const failed = caught(() => iterator.next());
    await within(server.close(), "close() despite the stubborn handler", 2000);
    assertDynamoError(await failed, "cancelled", "cancelled_by_server");
  } finally {
    never.resolve();
    await client.close();
    await server.close();
  }
});

Deno.test("RequestPlaneServer closes a connection whose frame header exceeds maxFrameBytes and cancels its streams", async () => {
  const server = await listen({ maxFrameBytes: 1024 });
  const aborted = deferred<unknown>();
  server.register("forever", waitingHandler(aborted));
  const peer = await rawClient(server);
  try {
    await peer.send(open(1, "forever"));
    assert.deepEqual(await peer.receive(), { t: "item", s: 1, data: "started" });
    await peer.sendRaw(new Uint8Array([0, 0, 0x04, 0x01])); // 1025 bytes announced
    await within(peer.waitClosed(), "the server to close the connection");
    assertDynamoError(
      await within(aborted.promise, "the handler's abort"),
      "cancelled",
      "disconnected",
    );
  } finally {
    peer.close();
    await server.close();
  }
});

Deno.test("RequestPlaneServer sends an oversized item as frame_too_large and keeps the connection", async () => {
  const server = await listen({ maxFrameBytes: 1024 });
  const finallyRan = deferred<void>();
  server.register("big", async function* () {
    try {
      yield "x".repeat(2000);
      yield "never";
    } finally {
      finallyRan.resolve();
    }
  });
  server.register("small", async function* () {
    yield "ok";
  });
  const peer = await rawClient(server);
  try {
    await peer.send(open(1, "big"));
    const error = await peer.receive();
    assert.equal(error?.t, "error");
    assert.equal((error?.error as { reason: string }).reason, "frame_too_large");
    await within(finallyRan.promise, "the handler's finally");
    await peer.send(open(2, "small"));
    assert.deepEqual(await peer.receive(), { t: "item", s: 2, data: "ok" });
    assert.deepEqual(await peer.receive(), { t: "end", s: 2 });
  } finally {
    peer.close();
    await server.close();
  }
});

Deno.test("RequestPlaneServer cancels the streams of a client that goes silent", async () => {
  const server = await listen({ peerSilenceTimeoutMs: 60 });
  const aborted = deferred<unknown>();
  server.register("forever", waitingHandler(aborted));
  const peer = await rawClient(server);
  try {
    await peer.send(open(1, "forever"));
    // No pings from here on: a dead or partitioned client.
    await within(peer.waitClosed(), "the server to close the silent connection");
    assertDynamoError(await aborted.promise, "cancelled", "disconnected");
    assert.equal(server.inflightStreams, 0);
  } finally {
    peer.close();
    await server.close();
  }
});

Deno.test("RequestPlaneServer answers ping with pong and closes a connection that never says hello", async () => {
  const server = await listen({ handshakeTimeoutMs: 50 });
  const peer = await rawClient(server);
  const mute = new RawPeer(await Deno.connect({ hostname: "127.0.0.1", port: server.port }));
  try {
    await peer.send({ t: "ping" });
    assert.deepEqual(await peer.receive(), { t: "pong" });
    assert.deepEqual(await mute.receive(), { t: "hello", v: 1 });
    await within(mute.waitClosed(), "the handshake timeout");
  } finally {
    peer.close();
    mute.close();
    await server.close();
  }
});

Deno.test("RequestPlaneServer closes a connection that breaks the protocol", async () => {
  const server = await listen();
  server.register("forever", waitingHandler(deferred()));
  const cases: Record<string, unknown>[][] = [
    [{ t: "item", s: 1, data: 1 }], // only servers send items
    [open(1, "forever"), open(1, "forever")], // stream id reused
    [{ t: "credit", s: 9, n: 1 }], // stream never opened
    [open(1, "forever", 2), { t: "credit", s: 1, n: 5 }], // credit beyond the window
    [{ t: "open", s: 1 }], // malformed open
  ];
  try {
    for (const messages of cases) {
      const peer = await rawClient(server);
      try {
        for (const m of messages) await peer.send(m);
        await within(peer.waitClosed(), `the server to reject ${JSON.stringify(messages)}`);
      } finally {
        peer.close();
      }
    }
    const garbage = await rawClient(server);
    try {
      await garbage.sendRaw(new Uint8Array([0, 0, 0, 1, 0xc1])); // 0xc1 is never valid msgpack
      await within(garbage.waitClosed(), "the server to reject garbage");
    } finally {
      garbage.close();
    }
  } finally {
    await server.close();
  }
});

Deno.test("RequestPlaneServer refuses an open beyond maxStreamsPerConnection with overloaded", async () => {
  const server = await listen({ maxStreamsPerConnection: 2, maxWindowItems: 16 });
  server.register("forever", waitingHandler(deferred()));
  const peer = await rawClient(server);
  try {
    await peer.send(open(1, "forever"));
    await peer.send(open(2, "forever"));
    await peer.send(open(3, "forever"));
    await peer.send(open(4, "forever", 17));
    const seen = [];
    for (let i = 0; i < 4; i++) seen.push(await peer.receive());
    const errors = seen.filter((m) => m?.t === "error").map((
      m,
    ) => [m?.s, (m?.error as { reason: string }).reason]);
    assert.deepEqual(errors, [[3, "too_many_streams"], [4, "window_too_large"]]);
    assert.equal(server.inflightStreams, 2);
  } finally {
    peer.close();
    await server.close();
  }
});

Deno.test("RequestPlaneServer closes connections beyond maxConnections", async () => {
  const server = await listen({ maxConnections: 1 });
  const first = await rawClient(server);
  const second = new RawPeer(await Deno.connect({ hostname: "127.0.0.1", port: server.port }));
  try {
    assert.equal(await within(second.receive(), "the refused connection to close"), undefined);
    await first.send({ t: "ping" });
    assert.deepEqual(await first.receive(), { t: "pong" });
  } finally {
    first.close();
    second.close();
    await server.close();
  }
});
