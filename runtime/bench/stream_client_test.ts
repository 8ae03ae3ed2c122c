import assert from "node:assert/strict";
import { itlGaps, type StreamClientDeps, streamCompletion } from "./stream_client.ts";

const enc = new TextEncoder();

/** A fake server: each chunk is delivered at its time on a fake clock. */
function fakeServer(
  chunks: { atMs: number; text: string }[],
  init: { status?: number; contentType?: string } = {},
): StreamClientDeps & { requests: { url: string; body: string }[] } {
  let now = 0;
  const requests: { url: string; body: string }[] = [];
  const fetchFn = (input: string | URL | Request, opts?: RequestInit) => {
    requests.push({ url: String(input), body: String(opts?.body) });
    let i = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        const c = chunks[i++];
        if (c === undefined) {
          controller.close();
          return;
        }
        now = c.atMs;
        controller.enqueue(enc.encode(c.text));
      },
    }, { highWaterMark: 0 });
    return Promise.resolve(
      new Response(body, {
        status: init.status ?? 200,
        headers: { "content-type": init.contentType ?? "text/event-stream" },
      }),
    );
  };
  return { fetch: fetchFn as typeof fetch, clock: { nowMs: () => now }, requests };
}

const request = { url: "http://x/v1/completions", headers: {}, body: "{}" };
const text = (t: string) =>
  `data: ${JSON.stringify({ choices: [{ index: 0, text: t, finish_reason: null }] })}\n\n`;
const finish = `data: ${
  JSON.stringify({
    choices: [{ index: 0, text: "", finish_reason: "length" }],
    nvext: { worker_id: { decode_worker_id: 255, prefill_worker_id: null } },
  })
}\n\n`;
const usage = (prompt: number, completion: number, cached: number) =>
  `data: ${
    JSON.stringify({
      choices: [],
      usage: {
        prompt_tokens: prompt,
        completion_tokens: completion,
        prompt_tokens_details: { cached_tokens: cached },
      },
    })
  }\n\n`;

Deno.test("streamCompletion() records first-token and chunk times, usage and the worker", async () => {
  const server = fakeServer([
    { atMs: 10, text: ": comment\n\n" },
    { atMs: 30, text: text(" a") },
    { atMs: 35, text: text(" b") + text(" c").slice(0, 9) },
    { atMs: 50, text: text(" c").slice(9) },
    { atMs: 60, text: finish },
    // The usage chunk comes in a later read than the finish: it must still be read.
    { atMs: 61, text: usage(7, 3, 2) },
    { atMs: 62, text: "data: [DONE]\n\n" },
  ]);
  const out = await streamCompletion(server, request, { timeoutMs: 1000, keepText: true });
  assert.equal(out.status, "ok");
  assert.equal(out.startMs, 0);
  assert.equal(out.firstTokenMs, 30);
  assert.deepEqual(out.chunkTimesMs, [30, 35, 50]);
  assert.equal(out.text, " a b c");
  assert.deepEqual(out.usage, { promptTokens: 7, completionTokens: 3, cachedTokens: 2 });
  assert.equal(out.worker, "ff");
  assert.equal(out.endMs, 62);
});

Deno.test("streamCompletion() reads chat deltas and keeps no text unless asked", async () => {
  const delta = (content: string) =>
    `data: ${JSON.stringify({ choices: [{ delta: { content }, finish_reason: null }] })}\n\n`;
  const server = fakeServer([
    { atMs: 5, text: delta("") },
    { atMs: 8, text: delta("Hi") },
    {
      atMs: 9,
      text: 'data: {"choices":[{"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n',
    },
  ]);
  const out = await streamCompletion(server, request, { timeoutMs: 1000 });
  assert.equal(out.status, "ok");
  assert.equal(out.firstTokenMs, 8);
  assert.equal(out.text, "");
  assert.equal(out.usage, undefined);
});

Deno.test("streamCompletion() classifies failures by type", async (t) => {
  await t.step("an HTTP error status, with the server's message", async () => {
    const server = fakeServer([{
      atMs: 3,
      text: '{"error":{"message":"The model \\"x\\" does not exist","type":"not_found_error"}}',
    }], { status: 404, contentType: "application/json" });
    const out = await streamCompletion(server, request, { timeoutMs: 1000 });
    assert.equal(out.status, "error");
    assert.equal(out.errorType, "http_404");
    assert.equal(out.errorMessage, '404: The model "x" does not exist');
  });
  await t.step("an error event in the stream", async () => {
    const server = fakeServer([
      { atMs: 1, text: text(" a") },
      { atMs: 2, text: 'data: {"error":{"message":"engine died","code":500}}\n\ndata: [DONE]\n\n' },
    ]);
    const out = await streamCompletion(server, request, { timeoutMs: 1000 });
    assert.equal(out.errorType, "stream_error");
    assert.equal(out.errorMessage, "engine died");
  });
  await t.step("data that is not JSON", async () => {
    const out = await streamCompletion(
      fakeServer([{ atMs: 1, text: "data: {oops\n\n" }]),
      request,
      {
        timeoutMs: 1000,
      },
    );
    assert.equal(out.errorType, "invalid_stream");
  });
  await t.step("a stream that ends before it finishes", async () => {
    const out = await streamCompletion(fakeServer([{ atMs: 1, text: text(" a") }]), request, {
      timeoutMs: 1000,
    });
    assert.equal(out.errorType, "incomplete");
  });
  await t.step("a refused connection", async () => {
    const deps = {
      fetch: (() =>
        Promise.reject(new TypeError("error sending request: refused"))) as typeof fetch,
      clock: { nowMs: () => 0 },
    };
    const out = await streamCompletion(deps, request, { timeoutMs: 1000 });
    assert.equal(out.errorType, "connection");
  });
});

/** A server that answers headers, then never sends anything until the request is aborted. */
function hangingServer(): StreamClientDeps {
  const fetchFn = (_: unknown, opts?: RequestInit) => {
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        opts!.signal!.addEventListener("abort", () => controller.error(opts!.signal!.reason));
      },
    });
    return Promise.resolve(
      new Response(body, { headers: { "content-type": "text/event-stream" } }),
    );
  };
  return { fetch: fetchFn as typeof fetch, clock: { nowMs: () => 0 } };
}

Deno.test("streamCompletion() times out, or reports cancelled when the run ends", async () => {
  const timedOut = await streamCompletion(hangingServer(), request, { timeoutMs: 20 });
  assert.equal(timedOut.status, "error");
  assert.equal(timedOut.errorType, "timeout");
  const stop = new AbortController();
  const pending = streamCompletion(hangingServer(), request, {
    timeoutMs: 10_000,
    signal: stop.signal,
  });
  stop.abort();
  const cancelled = await pending;
  assert.equal(cancelled.status, "cancelled");
  assert.equal(cancelled.errorType, undefined);
});

Deno.test("itlGaps() gives one gap per token after the first, splitting multi-token chunks", () => {
  assert.deepEqual(itlGaps([10, 20, 40], 3), [10, 20]);
  // 5 tokens in 3 chunks: the two extra tokens are split over chunks 2 and 3.
  assert.deepEqual(itlGaps([10, 20, 40], 5), [5, 5, 10, 10]);
  assert.deepEqual(itlGaps([10, 20, 40], 6), [10 / 3, 10 / 3, 10 / 3, 10, 10]);
  assert.deepEqual(itlGaps([10], 4), []);
  assert.deepEqual(itlGaps([], 0), []);
  // Fewer tokens in usage than chunks (chunks without a whole token): one gap per chunk.
  assert.deepEqual(itlGaps([0, 1, 2], 2), [1, 1]);
});
