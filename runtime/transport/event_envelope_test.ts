import assert from "node:assert/strict";
import fc from "fast-check";
import { DynamoError } from "../errors/mod.ts";
import { decodeEventMessage, encodeEventMessage, type EventEnvelope } from "./event_envelope.ts";
import { decodeMsgpack, encodeMsgpack } from "./frame_codec.ts";

const utf8 = new TextEncoder();

function bytes(...parts: (number | string | Uint8Array)[]): Uint8Array {
  const out: number[] = [];
  for (const p of parts) {
    if (typeof p === "number") out.push(p);
    else if (typeof p === "string") out.push(...utf8.encode(p));
    else out.push(...p);
  }
  return new Uint8Array(out);
}

function u64(n: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, n);
  return b;
}

const sample: EventEnvelope = {
  publisherId: 0x1f_0102_0304_0506,
  sequence: 300,
  publishedAtMs: 1_700_000_000_123,
  topic: "namespace.dynamo.component.backend.kv-events",
  payload: encodeMsgpack({ worker_id: 7 }),
};

Deno.test("encodeEventMessage() writes Dynamo's four ZMQ frames", () => {
  const [topic, id, seq, frame] = encodeEventMessage(sample) as [
    Uint8Array,
    Uint8Array,
    Uint8Array,
    Uint8Array,
  ];
  assert.equal(new TextDecoder().decode(topic), sample.topic);
  assert.deepEqual([...id], [0x00, 0x1f, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06]);
  assert.deepEqual([...seq], [0, 0, 0, 0, 0, 0, 0x01, 0x2c]);
  assert.equal(frame[0], 1);
  const length = new DataView(frame.buffer, frame.byteOffset).getUint32(1);
  assert.equal(length, frame.length - 5);
  // The envelope as rmp-serde's to_vec_named writes it: a fixmap of 5, smallest integers.
  const expected = bytes(
    0x85,
    0xac,
    "publisher_id",
    0xcf,
    u64(BigInt(sample.publisherId)),
    0xa8,
    "sequence",
    0xcd,
    0x01,
    0x2c,
    0xac,
    "published_at",
    0xcf,
    u64(BigInt(sample.publishedAtMs)),
    0xa5,
    "topic",
    0xd9,
    sample.topic.length,
    sample.topic,
    0xa7,
    "payload",
    0xc4,
    sample.payload.length,
    sample.payload,
  );
  assert.deepEqual([...frame.subarray(5)], [...expected]);
});

Deno.test("decodeEventMessage() reads a message built byte by byte", () => {
  const payload = bytes(0x81, 0xa1, "a", 0x01); // {a: 1}
  const envelope = bytes(
    0x85,
    0xa8,
    "sequence",
    0x03,
    0xac,
    "publisher_id",
    0xce,
    0x00,
    0x01,
    0x00,
    0x00,
    0xa5,
    "topic",
    0xa3,
    "x.y",
    0xac,
    "published_at",
    0xcf,
    u64(1_700_000_000_000n),
    0xa7,
    "payload",
    0xc4,
    payload.length,
    payload,
  );
  const frame = bytes(1, 0, 0, 0, envelope.length, envelope);
  const decoded = decodeEventMessage([utf8.encode("x.y"), u64(65536n), u64(3n), frame]);
  assert.equal(decoded.publisherId, 65536);
  assert.equal(decoded.sequence, 3);
  assert.equal(decoded.publishedAtMs, 1_700_000_000_000);
  assert.equal(decoded.topic, "x.y");
  assert.deepEqual(decodeMsgpack(decoded.payload), { a: 1 });
});

Deno.test("decodeEventMessage() round-trips any envelope", () => {
  fc.assert(
    fc.property(
      fc.record({
        publisherId: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
        sequence: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
        publishedAtMs: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
        topic: fc.string({ maxLength: 300 }),
        payload: fc.uint8Array({ maxLength: 70_000 }),
      }),
      (envelope) => {
        const decoded = decodeEventMessage(encodeEventMessage(envelope));
        assert.deepEqual({ ...decoded, payload: [...decoded.payload] }, {
          ...envelope,
          payload: [...envelope.payload],
        });
      },
    ),
    { numRuns: 100 },
  );
});

Deno.test("decodeEventMessage() rejects malformed messages", () => {
  const good = encodeEventMessage(sample);
  const frame = good[3]!;
  const withFrame = (f: Uint8Array): Uint8Array[] => [good[0]!, good[1]!, good[2]!, f];
  const badVersion = frame.slice();
  badVersion[0] = 2;
  const badLength = frame.slice();
  badLength[4]! += 1;
  const cases: [string, Uint8Array[]][] = [
    ["three frames", good.slice(0, 3)],
    ["short id", [good[0]!, good[1]!.subarray(0, 7), good[2]!, frame]],
    ["version 2", withFrame(badVersion)],
    ["wrong length", withFrame(badLength)],
    ["truncated", withFrame(frame.subarray(0, 4))],
    ["other topic", [utf8.encode("other"), good[1]!, good[2]!, frame]],
    ["other sequence", [good[0]!, good[1]!, u64(301n), frame]],
    ["other publisher", [good[0]!, u64(1n), good[2]!, frame]],
  ];
  for (const [name, frames] of cases) {
    assert.throws(() => decodeEventMessage(frames), (err: unknown) => {
      assert.ok(err instanceof DynamoError, name);
      assert.equal(err.reason, "malformed_event", name);
      return true;
    });
  }
});
