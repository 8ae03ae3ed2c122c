/**
 * vLLM's ZMQ KV-event wire format (`vllm/distributed/kv_events.py`), decoded in every form
 * vLLM versions send and encoded exactly as vLLM's msgspec encoder writes it.
 *
 * A message is three ZMQ frames: `[topic (utf-8), seq (u64 big-endian, from 0, +1 per batch),
 * msgpack(KVEventBatch)]`. With msgspec's `array_like=True` the batch is
 * `[ts: float, events, data_parallel_rank: int|null]` and each event a tagged array
 * (`tag=True`: the class name first):
 *
 * - `["BlockStored", block_hashes, parent_block_hash, token_ids, block_size, lora_id,
 *   medium, lora_name, extra_keys, group_idx, kv_cache_spec_kind,
 *   kv_cache_spec_sliding_window]`
 * - `["BlockRemoved", block_hashes, medium, group_idx]`
 * - `["AllBlocksCleared"]`
 *
 * msgspec ignores `omit_defaults` for array-like structs (jcrist/msgspec#720), so every
 * field is written, nulls included; older vLLMs simply had fewer fields (`BlockStored` ended
 * at lora_id, `BlockRemoved` at block_hashes), so the decoder reads missing trailing
 * positions as null. Some vLLM versions drop `array_like`, which turns both the batch and
 * the events into maps (`{"ts", "events", "data_parallel_rank"?}`, `{"type": "BlockStored",
 * "block_hashes", …}`, here `omit_defaults` does leave out defaulted fields), the form
 * TRT-LLM and Dynamo's custom-engine docs use too; the decoder takes both. Unknown keys and
 * extra positions are ignored. Positions from 9 on follow current vLLM (group_idx, …), not
 * Dynamo's decoder, which reads position 9 as its own `block_mm_infos`.
 *
 * Block hashes arrive as unsigned or signed 64-bit integers (older vLLM used Python's signed
 * `hash()`; a negative i64 is the same 64 bits as a u64) or, with
 * `VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES=0`, as the raw digest bytes, which become
 * `int.from_bytes(digest, "big") & (2**64 - 1)` as vLLM's own int conversion does.
 * @module
 */
import { Unpackr } from "msgpackr";
import { DynamoError } from "../errors/mod.ts";
import { MsgpackFloat, type MsgpackValue, MsgpackWriter } from "./_msgpack_writer.ts";

/** vLLM's `BlockStored`: full blocks newly cached, parent first. */
export interface VllmBlockStored {
  readonly type: "BlockStored";
  /** One u64 per block, in chain order. */
  readonly blockHashes: readonly bigint[];
  readonly parentBlockHash: bigint | null;
  /** Every block's tokens, concatenated (`blockHashes.length * blockSize` of them). */
  readonly tokenIds: readonly number[];
  readonly blockSize: number;
  /** Deprecated in vLLM in favour of `loraName`; carried, never used for hashing. */
  readonly loraId: number | null;
  /** Where the blocks live: "GPU" for vLLM's device cache, other tiers for offloading. */
  readonly medium: string | null;
  readonly loraName: string | null;
  /** vLLM's per-block extra hash keys (multimodal ids, cache salt), as decoded. */
  readonly extraKeys?: readonly unknown[] | null;
  readonly groupIdx?: number | null;
  readonly kvCacheSpecKind?: string | null;
  readonly kvCacheSpecSlidingWindow?: number | null;
  /**
   * EAGLE mode: token_ids came as bigrams `[[t0,t1],[t1,t2],…]`; `tokenIds` holds them
   * flattened to `[t0, t1, …, tn]` and block i covers `blockSize + 1` tokens from `i*blockSize`.
   */
  readonly eagle?: boolean;
}

/** vLLM's `BlockRemoved`. */
export interface VllmBlockRemoved {
  readonly type: "BlockRemoved";
  readonly blockHashes: readonly bigint[];
  readonly medium: string | null;
  readonly groupIdx?: number | null;
}

/** vLLM's `AllBlocksCleared`: the engine reset its prefix cache. */
export interface VllmAllBlocksCleared {
  readonly type: "AllBlocksCleared";
}

export type VllmEvent = VllmBlockStored | VllmBlockRemoved | VllmAllBlocksCleared;

/** vLLM's `KVEventBatch`. */
export interface VllmEventBatch {
  /** Unix time in seconds (a Python float). */
  readonly ts: number;
  readonly events: readonly VllmEvent[];
  /** Set by vLLM's publisher; null (nil, or absent in the map form) when it was not. */
  readonly dpRank: number | null;
  /** Tags of events of a type this decoder does not know, skipped (decoder output only). */
  readonly skippedEventTypes?: readonly string[];
}

/** One decoded ZMQ message. */
export interface VllmMessage {
  readonly topic: string;
  readonly seq: bigint;
  readonly batch: VllmEventBatch;
}

/** Options for `encodeVllmBatch`. */
export interface VllmEncodeOptions {
  /**
   * Write hashes >= 2^63 as the negative i64 with the same bits, as a vLLM whose hashes come
   * from Python's signed `hash()` does. Default false: unsigned, as current vLLM sends them.
   */
  readonly signedHashes?: boolean;
}

/** The seq value of the end-of-replay marker, `(-1).to_bytes(8, "big", signed=True)`. */
export const VLLM_REPLAY_END_SEQ = (1n << 64n) - 1n;

const U64_MASK = (1n << 64n) - 1n;
const I64_SIGN = 1n << 63n;
const MAX_U32 = 0xffff_ffff;

// Maps decode as Map (no prototype keys, any key type); 64-bit integers as bigint.
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: false, int64AsType: "bigint" });
const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Decodes one vLLM ZMQ message `[topic, seq, payload]`. Throws a DynamoError
 * (`invalid_request`) naming what is wrong; the caller logs, counts and drops it.
 */
export function decodeVllmMessage(frames: readonly Uint8Array[]): VllmMessage {
  if (frames.length !== 3) {
    throw malformed("malformed_vllm_message", `expected 3 frames, got ${frames.length}`);
  }
  let topic: string;
  try {
    topic = utf8.decode(frames[0]!);
  } catch {
    throw malformed("malformed_vllm_message", "the topic frame is not valid UTF-8");
  }
  return { topic, seq: decodeSeq(frames[1]!), batch: decodeVllmBatch(frames[2]!) };
}

/** Reads a seq frame: exactly 8 bytes, big-endian u64 (the replay end marker is 2^64 − 1). */
export function decodeSeq(frame: Uint8Array): bigint {
  if (frame.length !== 8) {
    throw malformed("malformed_vllm_message", `the seq frame has ${frame.length} bytes, not 8`);
  }
  return new DataView(frame.buffer, frame.byteOffset, 8).getBigUint64(0, false);
}

/** Encodes a seq frame: 8 bytes, big-endian. */
export function encodeSeq(seq: bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt.asUintN(64, seq), false);
  return out;
}

/** Decodes a msgpack `KVEventBatch` in array or map form. */
export function decodeVllmBatch(payload: Uint8Array): VllmEventBatch {
  let raw: unknown;
  try {
    raw = unpackr.unpack(payload);
  } catch (err) {
    throw malformed(
      "malformed_msgpack",
      `the payload is not one msgpack value: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  let ts: unknown, events: unknown, dpRank: unknown;
  if (Array.isArray(raw)) {
    if (raw.length < 2) throw malformed("malformed_vllm_batch", "the batch array has < 2 items");
    [ts, events, dpRank] = raw;
  } else if (raw instanceof Map) {
    ts = raw.get("ts");
    events = raw.get("events");
    dpRank = raw.has("data_parallel_rank") ? raw.get("data_parallel_rank") : raw.get("dp_rank");
  } else {
    throw malformed("malformed_vllm_batch", `the batch is a ${describe(raw)}, not an array or map`);
  }
  if (typeof ts === "bigint") ts = Number(ts);
  if (typeof ts !== "number" || !Number.isFinite(ts)) {
    throw malformed("malformed_vllm_batch", `ts is a ${describe(ts)}, not a number`);
  }
  if (!Array.isArray(events)) {
    throw malformed("malformed_vllm_batch", `events is a ${describe(events)}, not an array`);
  }
  const decoded: VllmEvent[] = [];
  const skipped: string[] = [];
  for (let i = 0; i < events.length; i++) {
    const event = decodeEvent(events[i], `events[${i}]`);
    if (typeof event === "string") skipped.push(event);
    else decoded.push(event);
  }
  const rank = dpRank === undefined || dpRank === null
    ? null
    : int(dpRank, "data_parallel_rank", 0, 0xffff_ffff);
  const batch = { ts, events: decoded, dpRank: rank };
  return skipped.length === 0 ? batch : { ...batch, skippedEventTypes: skipped };
}

/** One event, or its tag when the type is unknown (skipped, so newer vLLMs still work). */
function decodeEvent(raw: unknown, where: string): VllmEvent | string {
  let tag: unknown;
  let field: (position: number, key: string) => unknown;
  if (Array.isArray(raw)) {
    tag = raw[0];
    field = (position) => raw[position];
  } else if (raw instanceof Map) {
    tag = raw.get("type");
    field = (_, key) => raw.get(key);
  } else {
    throw malformed("malformed_vllm_event", `${where} is a ${describe(raw)}, not an array or map`);
  }
  if (typeof tag !== "string") {
    throw malformed("malformed_vllm_event", `${where} has no string type tag`);
  }
  switch (tag) {
    case "BlockStored":
      return decodeStored(field, where);
    case "BlockRemoved":
      return {
        type: "BlockRemoved",
        blockHashes: hashes(required(field(1, "block_hashes"), `${where}.block_hashes`), where),
        medium: optionalString(field(2, "medium"), `${where}.medium`),
        groupIdx: optionalInt(field(3, "group_idx"), `${where}.group_idx`),
      };
    case "AllBlocksCleared":
      return { type: "AllBlocksCleared" };
    default:
      return tag;
  }
}

function decodeStored(field: (position: number, key: string) => unknown, where: string) {
  const parent = field(2, "parent_block_hash");
  const { tokenIds, eagle } = tokens(
    required(field(3, "token_ids"), `${where}.token_ids`),
    `${where}.token_ids`,
  );
  const extraKeys = field(8, "extra_keys");
  if (extraKeys !== undefined && extraKeys !== null && !Array.isArray(extraKeys)) {
    throw malformed("malformed_vllm_event", `${where}.extra_keys is not an array`);
  }
  const stored: VllmBlockStored = {
    type: "BlockStored",
    blockHashes: hashes(required(field(1, "block_hashes"), `${where}.block_hashes`), where),
    parentBlockHash: parent === undefined || parent === null
      ? null
      : hash(parent, `${where}.parent_block_hash`),
    tokenIds,
    blockSize: int(required(field(4, "block_size"), `${where}.block_size`), "block_size", 1),
    loraId: optionalInt(field(5, "lora_id"), `${where}.lora_id`),
    medium: optionalString(field(6, "medium"), `${where}.medium`),
    loraName: optionalString(field(7, "lora_name"), `${where}.lora_name`),
    extraKeys: (extraKeys as unknown[] | null | undefined) ?? null,
    groupIdx: optionalInt(field(9, "group_idx"), `${where}.group_idx`),
    kvCacheSpecKind: optionalString(field(10, "kv_cache_spec_kind"), `${where}.kv_cache_spec_kind`),
    kvCacheSpecSlidingWindow: optionalInt(
      field(11, "kv_cache_spec_sliding_window"),
      `${where}.kv_cache_spec_sliding_window`,
    ),
  };
  return eagle ? { ...stored, eagle: true } : stored;
}

/** A block hash as u64: ints of either sign keep their 64 bits; bytes keep their last 8, BE. */
function hash(raw: unknown, where: string): bigint {
  if (typeof raw === "bigint") return BigInt.asUintN(64, raw);
  if (typeof raw === "number") {
    if (!Number.isSafeInteger(raw)) {
      throw malformed("malformed_vllm_event", `${where} is ${raw}, not an integer`);
    }
    return BigInt.asUintN(64, BigInt(raw));
  }
  if (raw instanceof Uint8Array) {
    let value = 0n;
    for (const byte of raw.subarray(Math.max(0, raw.length - 8))) {
      value = (value << 8n) | BigInt(byte);
    }
    return value & U64_MASK;
  }
  throw malformed("malformed_vllm_event", `${where} is a ${describe(raw)}, not an int or bytes`);
}

function hashes(raw: unknown, where: string): bigint[] {
  if (!Array.isArray(raw)) {
    throw malformed("malformed_vllm_event", `${where}.block_hashes is not an array`);
  }
  return raw.map((h, i) => hash(h, `${where}.block_hashes[${i}]`));
}

/** token_ids as flat u32s, or EAGLE bigrams flattened to firsts plus the last second. */
function tokens(raw: unknown, where: string): { tokenIds: number[]; eagle: boolean } {
  if (!Array.isArray(raw)) throw malformed("malformed_vllm_event", `${where} is not an array`);
  if (raw.length > 0 && Array.isArray(raw[0])) {
    const out: number[] = [];
    for (let i = 0; i < raw.length; i++) {
      const pair = raw[i];
      if (!Array.isArray(pair) || pair.length !== 2) {
        throw malformed("malformed_vllm_event", `${where}[${i}] is not a [token, token] pair`);
      }
      out.push(int(pair[0], `${where}[${i}][0]`, 0, MAX_U32));
      if (i === raw.length - 1) out.push(int(pair[1], `${where}[${i}][1]`, 0, MAX_U32));
    }
    return { tokenIds: out, eagle: true };
  }
  const out = new Array<number>(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = int(raw[i], `${where}[${i}]`, 0, MAX_U32);
  return { tokenIds: out, eagle: false };
}

function int(raw: unknown, where: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const value = typeof raw === "bigint" && raw >= BigInt(min) && raw <= BigInt(max)
    ? Number(raw)
    : raw;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw malformed(
      "malformed_vllm_event",
      `${where} is ${describeValue(raw)}, not an integer in [${min}, ${max}]`,
    );
  }
  return value;
}

function optionalInt(raw: unknown, where: string): number | null {
  if (raw === undefined || raw === null) return null;
  return int(raw, where, Number.MIN_SAFE_INTEGER);
}

function optionalString(raw: unknown, where: string): string | null {
  if (raw === undefined || raw === null) return null;
  if (typeof raw !== "string") {
    throw malformed("malformed_vllm_event", `${where} is a ${describe(raw)}, not a string`);
  }
  return raw;
}

function required(raw: unknown, where: string): unknown {
  if (raw === undefined) throw malformed("malformed_vllm_event", `${where} is missing`);
  return raw;
}

function describe(raw: unknown): string {
  if (raw === null) return "nil";
  if (Array.isArray(raw)) return "array";
  if (raw instanceof Map) return "map";
  if (raw instanceof Uint8Array) return "bin";
  return typeof raw;
}

function describeValue(raw: unknown): string {
  return typeof raw === "number" || typeof raw === "bigint" ? String(raw) : `a ${describe(raw)}`;
}

function malformed(reason: string, detail: string): DynamoError {
  return new DynamoError("invalid_request", reason, `Cannot decode vLLM KV event batch: ${detail}`);
}

/**
 * Encodes a batch exactly as vLLM's msgspec encoder does with `array_like` and `tag`: every
 * field of current vLLM's layout in declaration order, nulls included (msgspec writes
 * defaults in array form even with `omit_defaults`), `ts` as float64, integers in their
 * smallest format.
 */
export function encodeVllmBatch(
  batch: VllmEventBatch,
  options: VllmEncodeOptions = {},
): Uint8Array {
  const signed = options.signedHashes ?? false;
  const wireHash = (h: bigint): bigint => {
    const u = BigInt.asUintN(64, h);
    return signed && u >= I64_SIGN ? u - (1n << 64n) : u;
  };
  const writer = new MsgpackWriter();
  writer.write([
    new MsgpackFloat(batch.ts),
    batch.events.map((e) => encodeEvent(e, wireHash)),
    batch.dpRank,
  ]);
  return writer.finish();
}

/** The three frames of one message: `[topic, seq BE, payload]`. */
export function encodeVllmMessage(
  message: VllmMessage,
  options: VllmEncodeOptions = {},
): Uint8Array[] {
  return [
    new TextEncoder().encode(message.topic),
    encodeSeq(message.seq),
    encodeVllmBatch(message.batch, options),
  ];
}

function encodeEvent(event: VllmEvent, wireHash: (h: bigint) => bigint): MsgpackValue {
  switch (event.type) {
    case "BlockStored":
      return [
        "BlockStored",
        event.blockHashes.map(wireHash),
        event.parentBlockHash === null ? null : wireHash(event.parentBlockHash),
        event.eagle === true ? bigrams(event.tokenIds) : event.tokenIds,
        event.blockSize,
        event.loraId,
        event.medium,
        event.loraName,
        (event.extraKeys ?? null) as MsgpackValue,
        event.groupIdx ?? null,
        event.kvCacheSpecKind ?? null,
        event.kvCacheSpecSlidingWindow ?? null,
      ];
    case "BlockRemoved":
      return [
        "BlockRemoved",
        event.blockHashes.map(wireHash),
        event.medium,
        event.groupIdx ?? null,
      ];
    case "AllBlocksCleared":
      return ["AllBlocksCleared"];
  }
}

/** The inverse of the decoder's EAGLE flattening: `[t0..tn]` → `[[t0,t1], …, [tn-1,tn]]`. */
function bigrams(tokens: readonly number[]): MsgpackValue[] {
  const out: MsgpackValue[] = [];
  for (let i = 0; i + 1 < tokens.length; i++) out.push([tokens[i]!, tokens[i + 1]!]);
  return out;
}
