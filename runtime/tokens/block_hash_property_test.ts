/**
 * BlockHasher against an independent XXH3-64 (hash-wasm's WebAssembly build of the
 * reference C code) for random tokens, block sizes and LoRA names.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { BlockHasher } from "./block_hash.ts";
import { expectedHashes } from "./testing.ts";

Deno.test("BlockHasher matches an independent XXH3-64 for any tokens, block size and LoRA name", async () => {
  const hasher = new BlockHasher();
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.integer({ min: 0, max: 0xffff_ffff }), { maxLength: 300 }),
      fc.integer({ min: 1, max: 64 }),
      fc.option(fc.string({ unit: "grapheme", maxLength: 20 }), { nil: undefined }),
      async (tokens, blockSize, loraName) => {
        const local = hasher.localHashes(tokens, blockSize, { loraName });
        const expected = await expectedHashes(tokens, blockSize, loraName);
        assert.deepEqual(local, expected.local);
        assert.deepEqual(hasher.sequenceHashes(local), expected.sequence);
      },
    ),
    { numRuns: 300 },
  );
});
