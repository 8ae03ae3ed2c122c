import assert from "node:assert/strict";
import { SseParser } from "./sse_parser.ts";

const enc = new TextEncoder();

function parseAll(chunks: (string | Uint8Array)[]): { event: string; data: string }[] {
  const p = new SseParser();
  const out = chunks.flatMap((c) => p.push(c));
  return [...out, ...p.end()];
}

Deno.test("SseParser.push() returns events completed by each chunk, in order", () => {
  const p = new SseParser();
  assert.deepEqual(p.push('data: {"a":1}\n\ndata: {"b"'), [{ event: "message", data: '{"a":1}' }]);
  assert.deepEqual(p.push(":2}\n"), []);
  assert.deepEqual(p.push("\ndata: [DONE]\n\n"), [
    { event: "message", data: '{"b":2}' },
    { event: "message", data: "[DONE]" },
  ]);
  assert.deepEqual(p.end(), []);
});

Deno.test("SseParser gives the same events however the bytes are split", () => {
  const body = 'data: {"x":"héllo ✓"}\r\n\r\n: keep-alive\n\nevent: error\ndata: {"error":' +
    '{"message":"boom"}}\n\ndata: one\rdata: two\r\rdata: [DONE]\n\n';
  const whole = parseAll([body]);
  assert.deepEqual(whole, [
    { event: "message", data: '{"x":"héllo ✓"}' },
    { event: "error", data: '{"error":{"message":"boom"}}' },
    { event: "message", data: "one\ntwo" },
    { event: "message", data: "[DONE]" },
  ]);
  const bytes = enc.encode(body);
  // Every split point, including inside "\r\n" and inside multi-byte UTF-8 sequences.
  for (let i = 1; i < bytes.length; i++) {
    assert.deepEqual(parseAll([bytes.slice(0, i), bytes.slice(i)]), whole, `split at ${i}`);
  }
  assert.deepEqual(parseAll([...bytes].map((b) => new Uint8Array([b]))), whole);
});

Deno.test("SseParser joins multi-line data and keeps the event type until dispatch", () => {
  assert.deepEqual(parseAll(["event: error\ndata: a\ndata:b\ndata\n\n", "data: c\n\n"]), [
    { event: "error", data: "a\nb\n" },
    { event: "message", data: "c" },
  ]);
});

Deno.test("SseParser ignores comments, ids, unknown fields and events without data", () => {
  assert.deepEqual(parseAll([": ping\n\nid: 7\nretry: 10\nfoo: bar\n\nevent: x\n\n"]), []);
});

Deno.test("SseParser.end() returns an event whose blank line never came", () => {
  assert.deepEqual(parseAll(["data: [DONE]"]), [{ event: "message", data: "[DONE]" }]);
  assert.deepEqual(parseAll(["data: [DONE]\n"]), [{ event: "message", data: "[DONE]" }]);
});

Deno.test("SseParser refuses an event larger than its bound", () => {
  const p = new SseParser({ maxEventBytes: 64 });
  assert.throws(() => p.push("data: " + "x".repeat(100)), /exceeds 64 bytes/);
  const q = new SseParser({ maxEventBytes: 64 });
  q.push("data: " + "x".repeat(40) + "\n");
  assert.throws(() => q.push("data: " + "y".repeat(40) + "\n"), /exceeds 64 bytes/);
  // Many small events stay within the bound: it applies per event, not per stream.
  const r = new SseParser({ maxEventBytes: 64 });
  for (let i = 0; i < 100; i++) assert.equal(r.push(`data: ${"z".repeat(40)}\n\n`).length, 1);
});
