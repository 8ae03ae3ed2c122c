import assert from "node:assert/strict";
import fc from "fast-check";
import { DynamoError } from "../errors/mod.ts";
import {
  decodeVllmBatch,
  decodeVllmMessage,
  encodeVllmBatch,
  encodeVllmMessage,
  type VllmEvent,
  type VllmEventBatch,
} from "./vllm_wire.ts";

/**
 * Bytes from a hex listing: `//` comments and whitespace are ignored. The listings below are
 * assembled by hand from the msgpack spec, as vLLM's Python publisher (msgspec) writes them.
 */
function hex(listing: string): Uint8Array {
  const digits = listing.replace(/\/\/.*$/gm, "").replace(/\s+/g, "");
  assert.equal(digits.length % 2, 0, "odd number of hex digits");
  return new Uint8Array(digits.match(/../g)!.map((b) => parseInt(b, 16)));
}

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
const U64 = (1n << 64n) - 1n;

/** Current vLLM (array_like=True): every field written, nulls included; dp rank 1. */
const ARRAY_BATCH = hex(`
  93                                      // KVEventBatch: array of 3
  cb 41 d9 54 fc 40 20 00 00              //   ts: float64 1700000000.5
  93                                      //   events: array of 3
  9c                                      //     BlockStored: array of 12 (tag + 11 fields)
  ab 42 6c 6f 63 6b 53 74 6f 72 65 64     //       fixstr(11) "BlockStored"
  92                                      //       block_hashes: array of 2
  cf fe dc ba 98 76 54 32 10              //         uint64 0xfedcba9876543210
  fe                                      //         negative fixint -2 (signed hash)
  d3 80 00 00 00 00 00 00 01              //       parent_block_hash: int64 -(2^63)+1
  98 01 02 03 04 05 06 07 08              //       token_ids: array of 8, 1..8
  04                                      //       block_size: 4
  c0                                      //       lora_id: nil
  a3 47 50 55                             //       medium: "GPU"
  c0                                      //       lora_name: nil
  c0 c0 c0 c0                             //       extra_keys, group_idx, kv_cache_spec_kind, _sliding_window: nil
  94                                      //     BlockRemoved: array of 4
  ac 42 6c 6f 63 6b 52 65 6d 6f 76 65 64  //       fixstr(12) "BlockRemoved"
  91 cf fe dc ba 98 76 54 32 10           //       block_hashes: [0xfedcba9876543210]
  a3 47 50 55                             //       medium: "GPU"
  c0                                      //       group_idx: nil
  91                                      //     AllBlocksCleared: array of 1
  b0 41 6c 6c 42 6c 6f 63 6b 73 43 6c 65 61 72 65 64 // fixstr(16) "AllBlocksCleared"
  01                                      //   data_parallel_rank: 1
`);

Deno.test("decodeVllmMessage() reads vLLM's three frames and the array form with signed and unsigned hashes", () => {
  const message = decodeVllmMessage([
    utf8("kv-events"),
    hex("00 00 00 00 00 00 00 07"), // seq 7, u64 big-endian
    ARRAY_BATCH,
  ]);
  assert.equal(message.topic, "kv-events");
  assert.equal(message.seq, 7n);
  assert.equal(message.batch.ts, 1700000000.5);
  assert.equal(message.batch.dpRank, 1);
  assert.deepEqual(message.batch.events, [
    {
      type: "BlockStored",
      blockHashes: [0xfedcba9876543210n, U64 - 1n],
      parentBlockHash: 0x8000000000000001n,
      tokenIds: [1, 2, 3, 4, 5, 6, 7, 8],
      blockSize: 4,
      loraId: null,
      medium: "GPU",
      loraName: null,
      extraKeys: null,
      groupIdx: null,
      kvCacheSpecKind: null,
      kvCacheSpecSlidingWindow: null,
    },
    { type: "BlockRemoved", blockHashes: [0xfedcba9876543210n], medium: "GPU", groupIdx: null },
    { type: "AllBlocksCleared" },
  ]);
});

Deno.test("decodeVllmBatch() reads the map form, ignoring unknown keys", () => {
  const batch = decodeVllmBatch(hex(`
    83                                    // map of 3
    a2 74 73                              //   "ts"
    cb 3f f8 00 00 00 00 00 00            //   float64 1.5
    a6 65 76 65 6e 74 73                  //   "events"
    91                                    //   array of 1
    89                                    //     map of 9
    a4 74 79 70 65                        //       "type"
    ab 42 6c 6f 63 6b 53 74 6f 72 65 64   //       "BlockStored"
    ac 62 6c 6f 63 6b 5f 68 61 73 68 65 73 //      "block_hashes"
    91 05                                 //       [5]
    b1 70 61 72 65 6e 74 5f 62 6c 6f 63 6b 5f 68 61 73 68 // "parent_block_hash"
    03                                    //       3
    a9 74 6f 6b 65 6e 5f 69 64 73         //       "token_ids"
    94 09 09 09 09                        //       [9, 9, 9, 9]
    aa 62 6c 6f 63 6b 5f 73 69 7a 65      //       "block_size"
    04                                    //       4
    a7 6c 6f 72 61 5f 69 64               //       "lora_id"
    c0                                    //       nil
    a6 6d 65 64 69 75 6d                  //       "medium"
    a3 47 50 55                           //       "GPU"
    a9 6c 6f 72 61 5f 6e 61 6d 65         //       "lora_name"
    a7 6d 79 2d 6c 6f 72 61               //       "my-lora"
    ac 66 75 74 75 72 65 5f 66 69 65 6c 64 //      "future_field" (unknown: ignored)
    01                                    //       1
    b2 64 61 74 61 5f 70 61 72 61 6c 6c 65 6c 5f 72 61 6e 6b // "data_parallel_rank"
    00                                    //   0
  `));
  assert.equal(batch.ts, 1.5);
  assert.equal(batch.dpRank, 0);
  assert.deepEqual(batch.events, [{
    type: "BlockStored",
    blockHashes: [5n],
    parentBlockHash: 3n,
    tokenIds: [9, 9, 9, 9],
    blockSize: 4,
    loraId: null,
    medium: "GPU",
    loraName: "my-lora",
    extraKeys: null,
    groupIdx: null,
    kvCacheSpecKind: null,
    kvCacheSpecSlidingWindow: null,
  }]);
});

Deno.test("decodeVllmBatch() converts bytes hashes as vLLM's int conversion does and reads positions >= 9 per vLLM", () => {
  const digest = Array.from({ length: 32 }, (_, i) => i.toString(16).padStart(2, "0")).join(" ");
  const batch = decodeVllmBatch(hex(`
    93                                    // batch: array of 3
    cb 3f f8 00 00 00 00 00 00            //   ts 1.5
    91                                    //   events: array of 1
    9c                                    //     BlockStored: array of 12
    ab 42 6c 6f 63 6b 53 74 6f 72 65 64   //       "BlockStored"
    91                                    //       block_hashes: array of 1
    c4 20 ${digest}                       //         bin8(32): a sha256 digest 00 01 .. 1f
    c0                                    //       parent: nil
    92 07 07                              //       token_ids [7, 7]
    02                                    //       block_size 2
    c0                                    //       lora_id nil
    a3 47 50 55                           //       medium "GPU"
    c0                                    //       lora_name nil
    c0                                    //       extra_keys nil
    03                                    //       group_idx 3 (position 9)
    ae 66 75 6c 6c 5f 61 74 74 65 6e 74 69 6f 6e // kv_cache_spec_kind "full_attention"
    c0                                    //       kv_cache_spec_sliding_window nil
    c0                                    //   data_parallel_rank: nil
  `));
  assert.equal(batch.dpRank, null);
  const stored = batch.events[0]!;
  assert.equal(stored.type, "BlockStored");
  // int.from_bytes(digest, "big") & (2**64 - 1): the digest's last 8 bytes.
  assert.deepEqual(stored.blockHashes, [0x18191a1b1c1d1e1fn]);
  assert.equal(stored.groupIdx, 3);
  assert.equal(stored.kvCacheSpecKind, "full_attention");
});

Deno.test("decodeVllmBatch() reads an older vLLM's shorter arrays and skips unknown event types", () => {
  const batch = decodeVllmBatch(hex(`
    92                                    // batch: array of 2 (no data_parallel_rank yet)
    cb 3f f8 00 00 00 00 00 00            //   ts 1.5
    93                                    //   events: array of 3
    96                                    //     BlockStored: array of 6 (ends at lora_id)
    ab 42 6c 6f 63 6b 53 74 6f 72 65 64   //       "BlockStored"
    91 2a                                 //       block_hashes [42]
    c0                                    //       parent nil
    92 01 02                              //       token_ids [1, 2]
    02                                    //       block_size 2
    c0                                    //       lora_id nil
    92                                    //     array of 2
    ac 42 6c 6f 63 6b 55 70 64 61 74 65 64 //      "BlockUpdated": a type from the future
    90                                    //       []
    92                                    //     BlockRemoved: array of 2 (no medium yet)
    ac 42 6c 6f 63 6b 52 65 6d 6f 76 65 64 //      "BlockRemoved"
    91 2a                                 //       block_hashes [42]
  `));
  assert.equal(batch.dpRank, null);
  assert.deepEqual(batch.skippedEventTypes, ["BlockUpdated"]);
  assert.deepEqual(batch.events.map((e) => e.type), ["BlockStored", "BlockRemoved"]);
  const stored = batch.events[0]!;
  assert.ok(stored.type === "BlockStored");
  assert.equal(stored.medium, null);
  assert.equal(stored.loraName, null);
  assert.deepEqual(batch.events[1], {
    type: "BlockRemoved",
    blockHashes: [42n],
    medium: null,
    groupIdx: null,
  });
});

Deno.test("decodeVllmBatch() flattens EAGLE bigram token ids", () => {
  const batch = decodeVllmBatch(hex(`
    93 cb 3f f8 00 00 00 00 00 00         // [1.5,
    91 98                                 //  [[ (BlockStored as an array of 8)
    ab 42 6c 6f 63 6b 53 74 6f 72 65 64   //   "BlockStored",
    92 15 16                              //   [21, 22],
    c0                                    //   nil,
    94 92 0a 0b 92 0b 0c 92 0c 0d 92 0d 0e //  [[10,11],[11,12],[12,13],[13,14]],
    02 c0 c0 c0                           //   2, nil, nil, nil]],
    00                                    //  0]
  `));
  const stored = batch.events[0]!;
  assert.ok(stored.type === "BlockStored");
  assert.deepEqual(stored.tokenIds, [10, 11, 12, 13, 14]);
  assert.equal(stored.eagle, true);
});

Deno.test("decodeVllmMessage() refuses malformed messages with invalid_request", () => {
  const bad: [string, Uint8Array[]][] = [
    ["two frames", [utf8(""), hex("00 00 00 00 00 00 00 00")]],
    ["a 4-byte seq", [utf8(""), hex("00 00 00 01"), ARRAY_BATCH]],
    ["truncated msgpack", [utf8(""), hex("00 00 00 00 00 00 00 00"), ARRAY_BATCH.slice(0, 40)]],
    ["a batch that is a string", [utf8(""), hex("00 00 00 00 00 00 00 00"), hex("a1 78")]],
    [
      "a negative token id",
      [
        utf8(""),
        hex("00 00 00 00 00 00 00 00"),
        hex(`
        92 cb 3f f8 00 00 00 00 00 00 91
        95 ab 42 6c 6f 63 6b 53 74 6f 72 65 64 91 01 c0 91 ff 01 // token_ids [-1]
      `),
      ],
    ],
    [
      "a missing block_size",
      [
        utf8(""),
        hex("00 00 00 00 00 00 00 00"),
        hex(`
        92 cb 3f f8 00 00 00 00 00 00 91
        94 ab 42 6c 6f 63 6b 53 74 6f 72 65 64 91 01 c0 91 01 // 4 of 5 required items
      `),
      ],
    ],
    ["a float hash", [
      utf8(""),
      hex("00 00 00 00 00 00 00 00"),
      hex(`
        92 cb 3f f8 00 00 00 00 00 00 91
        92 ac 42 6c 6f 63 6b 52 65 6d 6f 76 65 64 91 cb 3f f8 00 00 00 00 00 00
      `),
    ]],
  ];
  for (const [what, frames] of bad) {
    assert.throws(
      () => decodeVllmMessage(frames),
      (err: unknown) => err instanceof DynamoError && err.errorClass === "invalid_request",
      what,
    );
  }
});

Deno.test("encodeVllmBatch() writes exactly what vLLM's msgspec encoder writes", () => {
  const batch: VllmEventBatch = {
    ts: 1.5,
    events: [{
      type: "BlockStored",
      blockHashes: [1n, (1n << 63n) + 5n],
      parentBlockHash: null,
      tokenIds: [1, 2],
      blockSize: 2,
      loraId: null,
      medium: "GPU",
      loraName: null,
    }],
    dpRank: 0,
  };
  const expected = (hash: string): Uint8Array =>
    hex(`
    93                                    // batch: array of 3
    cb 3f f8 00 00 00 00 00 00            //   ts: float64 1.5 (a Python float stays float64)
    91                                    //   events: array of 1
    9c                                    //     BlockStored: all 12 items (msgspec#720)
    ab 42 6c 6f 63 6b 53 74 6f 72 65 64   //       "BlockStored"
    92 01 ${hash}                         //       block_hashes [1, 2^63+5]
    c0                                    //       parent nil
    92 01 02                              //       token_ids [1, 2]
    02                                    //       block_size 2
    c0 a3 47 50 55 c0                     //       lora_id nil, medium "GPU", lora_name nil
    c0 c0 c0 c0                           //       extra_keys .. kv_cache_spec_sliding_window nil
    00                                    //   data_parallel_rank 0
  `);
  assert.deepEqual(encodeVllmBatch(batch), expected("cf 80 00 00 00 00 00 00 05")); // uint64
  assert.deepEqual(
    encodeVllmBatch(batch, { signedHashes: true }),
    expected("d3 80 00 00 00 00 00 00 05"), // int64 -(2^63)+5: the same 64 bits
  );
  assert.deepEqual(
    encodeVllmMessage({ topic: "t", seq: 258n, batch }).slice(0, 2),
    [utf8("t"), hex("00 00 00 00 00 00 01 02")],
  );
});

Deno.test("encodeVllmBatch() output decodes back to the same batch (property)", () => {
  const u64 = fc.bigInt({ min: 0n, max: U64 });
  const nullable = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: null });
  const stored = fc.record({
    type: fc.constant("BlockStored" as const),
    blockHashes: fc.array(u64, { maxLength: 5 }),
    parentBlockHash: nullable(u64),
    tokenIds: fc.array(fc.nat({ max: 0xffff_ffff }), { maxLength: 40 }),
    blockSize: fc.integer({ min: 1, max: 1024 }),
    loraId: nullable(fc.integer({ min: -5, max: 2 ** 40 })),
    medium: nullable(fc.string()),
    loraName: nullable(fc.string()),
    extraKeys: nullable(fc.array(nullable(fc.array(fc.string(), { maxLength: 3 })))),
    groupIdx: nullable(fc.nat()),
    kvCacheSpecKind: nullable(fc.string()),
    kvCacheSpecSlidingWindow: nullable(fc.nat()),
  });
  const eagle = fc.record({
    type: fc.constant("BlockStored" as const),
    blockHashes: fc.array(u64, { maxLength: 3 }),
    parentBlockHash: nullable(u64),
    tokenIds: fc.array(fc.nat({ max: 0xffff_ffff }), { minLength: 2, maxLength: 20 }),
    blockSize: fc.integer({ min: 1, max: 16 }),
    loraId: fc.constant(null),
    medium: fc.constant("GPU"),
    loraName: fc.constant(null),
    extraKeys: fc.constant(null),
    groupIdx: fc.constant(null),
    kvCacheSpecKind: fc.constant(null),
    kvCacheSpecSlidingWindow: fc.constant(null),
    eagle: fc.constant(true),
  });
  const removed = fc.record({
    type: fc.constant("BlockRemoved" as const),
    blockHashes: fc.array(u64, { maxLength: 5 }),
    medium: nullable(fc.string()),
    groupIdx: nullable(fc.nat()),
  });
  const cleared = fc.constant({ type: "AllBlocksCleared" as const });
  const batch = fc.record({
    ts: fc.double({ noNaN: true, noDefaultInfinity: true }),
    events: fc.array(fc.oneof(stored, eagle, removed, cleared) as fc.Arbitrary<VllmEvent>, {
      maxLength: 6,
    }),
    dpRank: nullable(fc.nat()),
  });
  fc.assert(
    fc.property(batch, fc.boolean(), (b, signedHashes) => {
      const decoded = decodeVllmBatch(encodeVllmBatch(b, { signedHashes }));
      // structuredClone: fast-check's records have a null prototype.
      assert.deepEqual(decoded, structuredClone(b));
    }),
    { numRuns: 300 },
  );
});
