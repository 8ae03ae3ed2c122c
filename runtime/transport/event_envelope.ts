import { DynamoError } from "../errors/mod.ts";
import { decodeMsgpack } from "./frame_codec.ts";

/** The version byte that opens the last ZMQ frame. */
export const EVENT_FRAME_VERSION = 1;

/** Bytes before the envelope in the last frame: u8 version, u32 BE envelope length. */
const FRAME_PREFIX_BYTES = 5;

/**
 * Dynamo's `EventEnvelope`: who published, its per-publisher sequence (from 0), when (Unix
 * ms), the subject, and the msgpack bytes of the event itself.
 */
export interface EventEnvelope {
  readonly publisherId: number;
  readonly sequence: number;
  readonly publishedAtMs: number;
  readonly topic: string;
  readonly payload: Uint8Array;
}

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * The four ZMQ frames of one event, as Dynamo's ZMQ event plane sends them:
 * `[topic utf8, publisher_id u64 BE, sequence u64 BE, u8 version | u32 BE len | envelope]`,
 * the envelope a msgpack map with field names (rmp-serde `to_vec_named` layout: unsigned
 * integers in their smallest form, payload as bin).
 */
export function encodeEventMessage(envelope: EventEnvelope): Uint8Array[] {
  const body = encodeEnvelope(envelope);
  const frame = new Uint8Array(FRAME_PREFIX_BYTES + body.length);
  const view = new DataView(frame.buffer);
  view.setUint8(0, EVENT_FRAME_VERSION);
  view.setUint32(1, body.length);
  frame.set(body, FRAME_PREFIX_BYTES);
  return [
    utf8.encode(envelope.topic),
    u64Bytes(envelope.publisherId),
    u64Bytes(envelope.sequence),
    frame,
  ];
}

/**
 * Decodes and checks the four frames of one event. Throws a DynamoError (`invalid_request`,
 * `malformed_event`) for anything else, including header frames that disagree with the
 * envelope and ids beyond 2^53.
 */
export function decodeEventMessage(frames: readonly Uint8Array[]): EventEnvelope {
  if (frames.length !== 4) throw malformed(`expected 4 frames, got ${frames.length}`);
  const [topicFrame, idFrame, seqFrame, frame] = frames as [
    Uint8Array,
    Uint8Array,
    Uint8Array,
    Uint8Array,
  ];
  if (idFrame.length !== 8 || seqFrame.length !== 8) {
    throw malformed("publisher id and sequence must be 8 bytes");
  }
  if (frame.length < FRAME_PREFIX_BYTES) {
    throw malformed(`frame of ${frame.length} bytes is too short`);
  }
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const version = view.getUint8(0);
  if (version !== EVENT_FRAME_VERSION) throw malformed(`unsupported frame version ${version}`);
  const length = view.getUint32(1);
  if (length !== frame.length - FRAME_PREFIX_BYTES) {
    throw malformed(
      `length prefix says ${length} bytes, frame holds ${frame.length - FRAME_PREFIX_BYTES}`,
    );
  }
  let decoded: unknown;
  try {
    decoded = decodeMsgpack(frame.subarray(FRAME_PREFIX_BYTES));
  } catch (err) {
    throw malformed(err instanceof Error ? err.message : String(err));
  }
  const envelope = parseEnvelope(decoded);
  if (readU64(idFrame) !== BigInt(envelope.publisherId)) {
    throw malformed("publisher id frame disagrees with the envelope");
  }
  if (readU64(seqFrame) !== BigInt(envelope.sequence)) {
    throw malformed("sequence frame disagrees with the envelope");
  }
  let topic: string;
  try {
    topic = utf8Decoder.decode(topicFrame);
  } catch {
    throw malformed("topic frame is not UTF-8");
  }
  if (topic !== envelope.topic) throw malformed("topic frame disagrees with the envelope");
  return envelope;
}

function parseEnvelope(value: unknown): EventEnvelope {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw malformed("envelope is not a map");
  }
  const e = value as Record<string, unknown>;
  if (typeof e.topic !== "string") throw malformed("envelope topic is not a string");
  if (!(e.payload instanceof Uint8Array)) throw malformed("envelope payload is not binary");
  return {
    publisherId: safeU64(e.publisher_id, "publisher_id"),
    sequence: safeU64(e.sequence, "sequence"),
    publishedAtMs: safeU64(e.published_at, "published_at"),
    topic: e.topic,
    payload: e.payload,
  };
}

function safeU64(value: unknown, field: string): number {
  const n = typeof value === "bigint" && value <= BigInt(Number.MAX_SAFE_INTEGER)
    ? Number(value)
    : value;
  if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0) {
    throw malformed(`envelope ${field} is not an unsigned integer below 2^53`);
  }
  return n;
}

function malformed(detail: string): DynamoError {
  return new DynamoError("invalid_request", "malformed_event", `Cannot decode event: ${detail}`);
}

function u64Bytes(value: number): Uint8Array {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(value));
  return bytes;
}

function readU64(bytes: Uint8Array): bigint {
  return new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0);
}

/** A msgpack writer for the envelope's fixed shape. */
class EnvelopeWriter {
  #bytes: Uint8Array;
  #view: DataView;
  #offset = 0;

  constructor(capacity: number) {
    this.#bytes = new Uint8Array(capacity);
    this.#view = new DataView(this.#bytes.buffer);
  }

  byte(b: number): void {
    this.#bytes[this.#offset++] = b;
  }

  /** An unsigned integer in its smallest msgpack form. */
  uint(n: number): void {
    if (n < 0x80) return this.byte(n);
    if (n <= 0xff) {
      this.byte(0xcc);
      return this.byte(n);
    }
    if (n <= 0xffff) {
      this.byte(0xcd);
      this.#view.setUint16(this.#offset, n);
      this.#offset += 2;
      return;
    }
    if (n <= 0xffff_ffff) {
      this.byte(0xce);
      this.#view.setUint32(this.#offset, n);
      this.#offset += 4;
      return;
    }
    this.byte(0xcf);
    this.#view.setBigUint64(this.#offset, BigInt(n));
    this.#offset += 8;
  }

  str(s: string): void {
    const bytes = utf8.encode(s);
    const n = bytes.length;
    if (n < 32) this.byte(0xa0 | n);
    else if (n <= 0xff) this.header8(0xd9, n);
    else if (n <= 0xffff) this.header16(0xda, n);
    else this.header32(0xdb, n);
    this.raw(bytes);
  }

  bin(bytes: Uint8Array): void {
    const n = bytes.length;
    if (n <= 0xff) this.header8(0xc4, n);
    else if (n <= 0xffff) this.header16(0xc5, n);
    else this.header32(0xc6, n);
    this.raw(bytes);
  }

  header8(marker: number, n: number): void {
    this.byte(marker);
    this.byte(n);
  }

  header16(marker: number, n: number): void {
    this.byte(marker);
    this.#view.setUint16(this.#offset, n);
    this.#offset += 2;
  }

  header32(marker: number, n: number): void {
    this.byte(marker);
    this.#view.setUint32(this.#offset, n);
    this.#offset += 4;
  }

  raw(bytes: Uint8Array): void {
    this.#bytes.set(bytes, this.#offset);
    this.#offset += bytes.length;
  }

  finish(): Uint8Array {
    return this.#bytes.subarray(0, this.#offset);
  }
}

function encodeEnvelope(e: EventEnvelope): Uint8Array {
  for (
    const [field, n] of [["publisherId", e.publisherId], ["sequence", e.sequence], [
      "publishedAtMs",
      e.publishedAtMs,
    ]] as const
  ) {
    if (!Number.isSafeInteger(n) || n < 0) {
      throw new DynamoError(
        "invalid_request",
        "invalid_event",
        `Cannot encode event: ${field} must be an unsigned safe integer, got ${n}`,
      );
    }
  }
  // Keys and integers take at most 64 bytes; the topic at most 3 bytes per UTF-16 unit.
  const w = new EnvelopeWriter(96 + 3 * e.topic.length + 5 + e.payload.length);
  w.byte(0x85);
  w.str("publisher_id");
  w.uint(e.publisherId);
  w.str("sequence");
  w.uint(e.sequence);
  w.str("published_at");
  w.uint(e.publishedAtMs);
  w.str("topic");
  w.str(e.topic);
  w.str("payload");
  w.bin(e.payload);
  return w.finish();
}
