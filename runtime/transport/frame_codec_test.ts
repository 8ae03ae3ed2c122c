import assert from "node:assert/strict";
import fc from "fast-check";
import { DynamoError } from "../errors/mod.ts";
import {
  decodeMsgpack,
  DEFAULT_MAX_FRAME_BYTES,
  encodeFrame,
  encodeMsgpack,
  FrameDecoder,
} from "./frame_codec.ts";

function decodeAll(decoder: FrameDecoder, chunks: Uint8Array[]): unknown[] {
  const out: unknown[] = [];
  for (const chunk of chunks) decoder.push(chunk, (body) => out.push(decodeMsgpack(body)));
  return out;
}

function splitAt(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let start = 0;
  for (const p of points) {
    chunks.push(bytes.slice(start, p));
    start = p;
  }
  chunks.push(bytes.slice(start));
  return chunks;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

Deno.test("encodeFrame() writes a big-endian u32 length before the msgpack body", () => {
  const frame = encodeFrame({ t: "ping" }, DEFAULT_MAX_FRAME_BYTES);
  const body = encodeMsgpack({ t: "ping" });
  assert.deepEqual([...frame.subarray(0, 4)], [0, 0, 0, body.length]);
  assert.deepEqual([...frame.subarray(4)], [...body]);
  // A plain msgpack map with its field name, not a msgpackr record.
  assert.deepEqual([...body], [0x81, 0xa1, 0x74, 0xa4, 0x70, 0x69, 0x6e, 0x67]);
});

Deno.test("FrameDecoder.push() reassembles frames however the stream is split", () => {
  const value = fc.oneof(
    fc.string(),
    fc.integer(),
    // msgpack has no integer -0 and msgpackr writes -0 as 0, as JSON does.
    fc.double({ noNaN: true }).filter((d) => !Object.is(d, -0)),
    fc.boolean(),
    fc.constant(null),
    fc.bigInt({ min: -(2n ** 100n), max: 2n ** 100n }),
    fc.uint8Array({ maxLength: 300 }),
  );
  const message = fc.dictionary(fc.string({ maxLength: 8 }), value, { maxKeys: 6 });
  fc.assert(
    fc.property(
      fc.array(message, { minLength: 1, maxLength: 8 }),
      fc.array(fc.nat(), { maxLength: 12 }),
      (messages, cuts) => {
        const stream = concat(messages.map((m) => encodeFrame(m, DEFAULT_MAX_FRAME_BYTES)));
        const decoded = decodeAll(new FrameDecoder(), splitAt(stream, cuts));
        assert.equal(decoded.length, messages.length);
        decoded.forEach((d, i) => {
          const expected = Object.fromEntries(
            Object.entries(messages[i]!).map(([k, v]) => [k, v instanceof Uint8Array ? [...v] : v]),
          );
          const actual = Object.fromEntries(
            Object.entries(d as Record<string, unknown>).map((
              [k, v],
            ) => [k, v instanceof Uint8Array ? [...v] : v]),
          );
          assert.deepEqual(actual, expected);
        });
      },
    ),
    { numRuns: 200 },
  );
});

Deno.test("decodeMsgpack() keeps numbers as numbers and BigInts as BigInts", () => {
  const value = {
    small: 7,
    wide: 2 ** 40,
    float: 1.5,
    negative: -3,
    big: 5n,
    u64: 2n ** 64n - 1n,
    huge: 2n ** 100n,
    negHuge: -(2n ** 90n),
  };
  const decoded = decodeMsgpack(encodeMsgpack(value)) as Record<string, unknown>;
  assert.deepEqual(decoded, value);
  assert.equal(typeof decoded.wide, "number");
  assert.equal(typeof decoded.big, "bigint");
});

Deno.test("decodeMsgpack() rejects truncated bytes and trailing bytes", () => {
  const bytes = encodeMsgpack({ a: "hello" });
  for (const bad of [bytes.subarray(0, bytes.length - 1), concat([bytes, new Uint8Array([1])])]) {
    assert.throws(() => decodeMsgpack(bad), (err: unknown) => {
      assert.ok(err instanceof DynamoError);
      assert.equal(err.reason, "malformed_msgpack");
      return true;
    });
  }
});

Deno.test("encodeFrame() refuses a body over maxFrameBytes with frame_too_large", () => {
  assert.throws(() => encodeFrame({ data: "x".repeat(2000) }, 1024), (err: unknown) => {
    assert.ok(err instanceof DynamoError);
    assert.equal(err.errorClass, "invalid_request");
    assert.equal(err.reason, "frame_too_large");
    assert.match(err.message, /^Cannot send frame of \d+ bytes: exceeds the limit of 1024 bytes/);
    return true;
  });
});

Deno.test("FrameDecoder.push() rejects a header announcing more than maxFrameBytes", () => {
  const decoder = new FrameDecoder(1024);
  const header = new Uint8Array([0, 0, 0x04, 0x01]); // 1025
  // Split inside the header: the limit applies before any body byte is buffered.
  decoder.push(header.subarray(0, 2), () => assert.fail("no frame expected"));
  assert.throws(() => decoder.push(header.subarray(2), () => {}), (err: unknown) => {
    assert.ok(err instanceof DynamoError);
    assert.equal(err.errorClass, "unavailable");
    assert.equal(err.reason, "protocol_error");
    assert.match(err.message, /1025 bytes/);
    return true;
  });
});

Deno.test("FrameDecoder.push() rejects an empty frame", () => {
  assert.throws(
    () => new FrameDecoder().push(new Uint8Array(4), () => {}),
    (err: unknown) => err instanceof DynamoError && err.reason === "protocol_error",
  );
});

Deno.test("FrameDecoder.bufferedBytes counts a partial frame", () => {
  const decoder = new FrameDecoder();
  const frame = encodeFrame({ s: "abcdef" }, DEFAULT_MAX_FRAME_BYTES);
  decoder.push(frame.subarray(0, 7), () => assert.fail("incomplete"));
  assert.equal(decoder.bufferedBytes, 3);
  let frames = 0;
  decoder.push(frame.subarray(7), () => frames++);
  assert.equal(frames, 1);
  assert.equal(decoder.bufferedBytes, 0);
});
