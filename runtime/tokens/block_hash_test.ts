import assert from "node:assert/strict";
import { xxh3 } from "@node-rs/xxhash";
import { BlockHasher, loraSeed, XXH3_SEED } from "./block_hash.ts";

function le32(tokens: number[]): Uint8Array {
  const buf = new Uint8Array(tokens.length * 4);
  const view = new DataView(buf.buffer);
  tokens.forEach((t, i) => view.setUint32(i * 4, t, true));
  return buf;
}

Deno.test("BlockHasher.localHashes() hashes only full blocks as u32 LE with seed 1337", () => {
  const hasher = new BlockHasher();
  const tokens = Array.from({ length: 10 }, (_, i) => i * 1000 + 7);
  const hashes = hasher.localHashes(tokens, 4);
  assert.equal(hashes.length, 2);
  assert.equal(hashes[0], xxh3.xxh64(le32(tokens.slice(0, 4)), 1337n));
  assert.equal(hashes[1], xxh3.xxh64(le32(tokens.slice(4, 8)), 1337n));
});

Deno.test("BlockHasher.localHashes() gives equal blocks equal hashes regardless of position", () => {
  const hasher = new BlockHasher();
  const hashes = hasher.localHashes([1, 2, 3, 1, 2, 3], 3);
  assert.equal(hashes[0], hashes[1]);
  assert.notEqual(hasher.localHashes([1, 2, 4], 3)[0], hashes[0]);
});

Deno.test("loraSeed() adds the unseeded hash of the adapter name to 1337, wrapping", () => {
  assert.equal(loraSeed(undefined), XXH3_SEED);
  const name = xxh3.xxh64(new TextEncoder().encode("my-lora"), 0n);
  assert.equal(loraSeed("my-lora"), (1337n + name) % (1n << 64n));
  const hasher = new BlockHasher();
  assert.notEqual(
    hasher.localHashes([1, 2], 2, { loraName: "my-lora" })[0],
    hasher.localHashes([1, 2], 2)[0],
  );
});

Deno.test("BlockHasher.sequenceHashes() chains le64(parent)||le64(local) with seed 1337", () => {
  const hasher = new BlockHasher();
  const local = [11n, 22n, (1n << 64n) - 1n];
  const seq = hasher.sequenceHashes(local);
  assert.equal(seq[0], 11n);
  const pair = new Uint8Array(16);
  const view = new DataView(pair.buffer);
  view.setBigUint64(0, 11n, true);
  view.setBigUint64(8, 22n, true);
  assert.equal(seq[1], xxh3.xxh64(pair, 1337n));
  view.setBigUint64(0, seq[1]!, true);
  view.setBigUint64(8, local[2]!, true);
  assert.equal(seq[2], xxh3.xxh64(pair, 1337n));
});

Deno.test("BlockHasher.localHashes() matches a pinned value for tokens 0..63", () => {
  // Pinned from an independent run (hash-wasm's XXH3) over u32 LE tokens 0..63, seed 1337.
  const hasher = new BlockHasher();
  const tokens = Array.from({ length: 64 }, (_, i) => i);
  assert.equal(hasher.localHashes(tokens, 64)[0], 3480597578098033343n);
});
