/**
 * A msgpack writer that picks the same formats as Python's msgspec, so bytes made here are
 * byte-for-byte what a vLLM publisher sends: integers in their smallest format (unsigned
 * formats for values >= 0, signed ones below), every float as float64 (Python floats are
 * doubles and msgspec never narrows them), str8 for strings of 32..255 bytes.
 *
 * msgpackr cannot stand in: it writes integer-valued numbers as integers (a float `ts` of
 * 1700000000.0 would come out as uint32) and every bigint as 9 bytes.
 */

/** What the writer can encode. `number` is an integer when it is one, else float64. */
export type MsgpackValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | MsgpackFloat
  | readonly MsgpackValue[];

/** A number that must be written as float64 even when its value is integral (Python float). */
export class MsgpackFloat {
  readonly value: number;
  constructor(value: number) {
    this.value = value;
  }
}

const MAX_U64 = (1n << 64n) - 1n;
const MIN_I64 = -(1n << 63n);
const encoder = new TextEncoder();

/** Growable output buffer with msgpack's primitive writes. */
export class MsgpackWriter {
  #buf = new Uint8Array(256);
  #view = new DataView(this.#buf.buffer);
  #len = 0;

  /** The bytes written so far (a copy the caller owns). */
  finish(): Uint8Array {
    return this.#buf.slice(0, this.#len);
  }

  write(value: MsgpackValue): void {
    if (value === null) this.#u8(0xc0);
    else if (typeof value === "boolean") this.#u8(value ? 0xc3 : 0xc2);
    else if (typeof value === "number") {
      if (Number.isSafeInteger(value)) this.int(BigInt(value));
      else this.float64(value);
    } else if (typeof value === "bigint") this.int(value);
    else if (typeof value === "string") this.str(value);
    else if (value instanceof Uint8Array) this.bin(value);
    else if (value instanceof MsgpackFloat) this.float64(value.value);
    else {
      this.arrayHeader(value.length);
      for (const item of value) this.write(item);
    }
  }

  /** An integer in the smallest format msgspec would use; throws outside i64 ∪ u64. */
  int(value: bigint): void {
    if (value > MAX_U64 || value < MIN_I64) {
      throw new RangeError(`Cannot encode ${value} as msgpack: outside the 64-bit integer range`);
    }
    if (value >= 0n) {
      if (value <= 0x7fn) this.#u8(Number(value));
      else if (value <= 0xffn) this.#u8(0xcc).#u8(Number(value));
      else if (value <= 0xffffn) this.#u8(0xcd).#u16(Number(value));
      else if (value <= 0xffff_ffffn) this.#u8(0xce).#u32(Number(value));
      else this.#u8(0xcf).#u64(value);
    } else if (value >= -32n) this.#u8(Number(value) & 0xff);
    else if (value >= -0x80n) this.#u8(0xd0).#u8(Number(value) & 0xff);
    else if (value >= -0x8000n) this.#u8(0xd1).#u16(Number(value) & 0xffff);
    else if (value >= -0x8000_0000n) this.#u8(0xd2).#u32(Number(value) >>> 0);
    else this.#u8(0xd3).#u64(BigInt.asUintN(64, value));
  }

  float64(value: number): void {
    this.#reserve(9);
    this.#buf[this.#len] = 0xcb;
    this.#view.setFloat64(this.#len + 1, value, false);
    this.#len += 9;
  }

  str(value: string): void {
    const bytes = encoder.encode(value);
    const n = bytes.length;
    if (n <= 31) this.#u8(0xa0 | n);
    else if (n <= 0xff) this.#u8(0xd9).#u8(n);
    else if (n <= 0xffff) this.#u8(0xda).#u16(n);
    else this.#u8(0xdb).#u32(n);
    this.#bytes(bytes);
  }

  bin(value: Uint8Array): void {
    const n = value.length;
    if (n <= 0xff) this.#u8(0xc4).#u8(n);
    else if (n <= 0xffff) this.#u8(0xc5).#u16(n);
    else this.#u8(0xc6).#u32(n);
    this.#bytes(value);
  }

  arrayHeader(length: number): void {
    if (length <= 15) this.#u8(0x90 | length);
    else if (length <= 0xffff) this.#u8(0xdc).#u16(length);
    else this.#u8(0xdd).#u32(length);
  }

  #reserve(extra: number): void {
    if (this.#len + extra <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.#len + extra) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(0, this.#len));
    this.#buf = next;
    this.#view = new DataView(next.buffer);
  }

  #u8(v: number): this {
    this.#reserve(1);
    this.#buf[this.#len++] = v;
    return this;
  }

  #u16(v: number): this {
    this.#reserve(2);
    this.#view.setUint16(this.#len, v, false);
    this.#len += 2;
    return this;
  }

  #u32(v: number): this {
    this.#reserve(4);
    this.#view.setUint32(this.#len, v, false);
    this.#len += 4;
    return this;
  }

  #u64(v: bigint): this {
    this.#reserve(8);
    this.#view.setBigUint64(this.#len, v, false);
    this.#len += 8;
    return this;
  }

  #bytes(bytes: Uint8Array): void {
    this.#reserve(bytes.length);
    this.#buf.set(bytes, this.#len);
    this.#len += bytes.length;
  }
}
