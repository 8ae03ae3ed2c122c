import { Packr } from "msgpackr";
import { DynamoError } from "../errors/mod.ts";

/**
 * The largest frame body a peer may send or receive, in bytes. Dynamo's
 * `DYN_TCP_MAX_MESSAGE_SIZE` default (32 MiB).
 */
export const DEFAULT_MAX_FRAME_BYTES = 32 * 1024 * 1024;

/** Bytes of frames a connection queues for its socket before senders wait: two largest frames. */
export const DEFAULT_MAX_QUEUED_BYTES = 2 * DEFAULT_MAX_FRAME_BYTES;

/** Bytes in a frame header: the body length as a big-endian u32. */
export const FRAME_HEADER_BYTES = 4;

/** The u32 header cannot describe more than this. */
const MAX_U32 = 0xffff_ffff;

/**
 * Plain msgpack: objects are maps with their field names (no msgpackr records) and the
 * smallest map header (as rmp-serde and Python's msgpack write them), numbers stay numbers,
 * 64-bit integers and BigInts decode as BigInt (wider ones through msgpackr's BigInt
 * extension), and decoded binaries are copies, so a reader may reuse its read buffer.
 */
const packr = new Packr({
  useRecords: false,
  variableMapSize: true,
  useBigIntExtension: true,
  copyBuffers: true,
});

/** Encodes a value as plain msgpack (maps with field names). */
export function encodeMsgpack(value: unknown): Uint8Array {
  return packr.pack(value);
}

/**
 * Decodes exactly one msgpack value. Throws a DynamoError (`invalid_request`,
 * `malformed_msgpack`) for bytes that are not one complete value.
 */
export function decodeMsgpack(bytes: Uint8Array): unknown {
  try {
    // unpack() rejects truncated input and trailing bytes alike.
    return packr.unpack(bytes);
  } catch (err) {
    throw new DynamoError(
      "invalid_request",
      "malformed_msgpack",
      `Cannot decode msgpack: ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    );
  }
}

/**
 * Encodes one frame: a u32 big-endian body length, then `value` as msgpack. Throws a
 * DynamoError (`invalid_request`, `frame_too_large`) when the body exceeds `maxFrameBytes`;
 * nothing is sent then, so the connection is unaffected.
 */
export function encodeFrame(value: unknown, maxFrameBytes: number): Uint8Array {
  const body = encodeMsgpack(value);
  if (body.length > maxFrameBytes || body.length > MAX_U32) {
    throw new DynamoError(
      "invalid_request",
      "frame_too_large",
      `Cannot send frame of ${body.length} bytes: exceeds the limit of ${maxFrameBytes} bytes ` +
        `(DYN_TCP_MAX_MESSAGE_SIZE)`,
    );
  }
  const frame = new Uint8Array(FRAME_HEADER_BYTES + body.length);
  new DataView(frame.buffer).setUint32(0, body.length);
  frame.set(body, FRAME_HEADER_BYTES);
  return frame;
}

/**
 * Splits a byte stream into frame bodies. Feed it whatever the socket returns; it calls
 * `onFrame` once per complete body. A body that lies entirely inside one chunk is passed as a
 * view of that chunk (valid only during the call), others are assembled in a buffer of
 * exactly the announced size. A header announcing more than `maxFrameBytes` (or an empty
 * body) is a protocol violation: `push` throws a DynamoError (`unavailable`,
 * `protocol_error`) and the decoder must not be used again.
 */
export class FrameDecoder {
  readonly maxFrameBytes: number;
  #header = new Uint8Array(FRAME_HEADER_BYTES);
  #headerFilled = 0;
  #body: Uint8Array | undefined;
  #bodyFilled = 0;

  constructor(maxFrameBytes: number = DEFAULT_MAX_FRAME_BYTES) {
    this.maxFrameBytes = maxFrameBytes;
  }

  /** Bytes held for a frame that is not complete yet. */
  get bufferedBytes(): number {
    return this.#headerFilled + this.#bodyFilled;
  }

  push(chunk: Uint8Array, onFrame: (body: Uint8Array) => void): void {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.#body === undefined) {
        if (this.#headerFilled === 0 && chunk.length - offset >= FRAME_HEADER_BYTES) {
          const length = this.#checkLength(readU32(chunk, offset));
          offset += FRAME_HEADER_BYTES;
          if (chunk.length - offset >= length) {
            onFrame(chunk.subarray(offset, offset + length));
            offset += length;
          } else {
            this.#startBody(length);
          }
          continue;
        }
        const take = Math.min(FRAME_HEADER_BYTES - this.#headerFilled, chunk.length - offset);
        this.#header.set(chunk.subarray(offset, offset + take), this.#headerFilled);
        this.#headerFilled += take;
        offset += take;
        if (this.#headerFilled < FRAME_HEADER_BYTES) return;
        this.#headerFilled = 0;
        this.#startBody(this.#checkLength(readU32(this.#header, 0)));
        continue;
      }
      const body: Uint8Array = this.#body;
      const take = Math.min(body.length - this.#bodyFilled, chunk.length - offset);
      body.set(chunk.subarray(offset, offset + take), this.#bodyFilled);
      this.#bodyFilled += take;
      offset += take;
      if (this.#bodyFilled === body.length) {
        this.#body = undefined;
        this.#bodyFilled = 0;
        onFrame(body);
      }
    }
  }

  #startBody(length: number): void {
    this.#body = new Uint8Array(length);
    this.#bodyFilled = 0;
  }

  #checkLength(length: number): number {
    if (length > this.maxFrameBytes) {
      throw new DynamoError(
        "unavailable",
        "protocol_error",
        `Cannot receive frame of ${length} bytes: exceeds the limit of ${this.maxFrameBytes} bytes`,
      );
    }
    if (length === 0) {
      throw new DynamoError("unavailable", "protocol_error", "Cannot receive frame: empty body");
    }
    return length;
  }
}

function readU32(bytes: Uint8Array, offset: number): number {
  return ((bytes[offset]! << 24) >>> 0) + (bytes[offset + 1]! << 16) + (bytes[offset + 2]! << 8) +
    bytes[offset + 3]!;
}
