import assert from "node:assert/strict";
import { setLogLevel } from "../observability/mod.ts";
import { BlockHasher } from "../tokens/mod.ts";
import { VllmEventConverter, vllmEventFromInternal } from "./vllm_event_converter.ts";
import type { VllmBlockStored } from "./vllm_wire.ts";

setLogLevel("off");

const hasher = new BlockHasher();

function storedEvent(overrides: Partial<VllmBlockStored> = {}): VllmBlockStored {
  return {
    type: "BlockStored",
    blockHashes: [101n, 102n],
    parentBlockHash: 100n,
    tokenIds: [1, 2, 3, 4, 5, 6, 7, 8],
    blockSize: 4,
    loraId: null,
    medium: "GPU",
    loraName: null,
    ...overrides,
  };
}

Deno.test("VllmEventConverter recomputes tokens_hash from the token ids at the worker's block size", () => {
  const c = new VllmEventConverter({ blockSizeTokens: 4 });
  const expected = hasher.localHashes([1, 2, 3, 4, 5, 6, 7, 8], 4);
  assert.deepEqual(c.convert(storedEvent(), 2), {
    data: {
      stored: {
        parent_hash: 100n,
        blocks: [
          { block_hash: 101n, tokens_hash: expected[0], token_ids: [1, 2, 3, 4] },
          { block_hash: 102n, tokens_hash: expected[1], token_ids: [5, 6, 7, 8] },
        ],
      },
    },
    dp_rank: 2,
  });
});

Deno.test("VllmEventConverter hashes with the LoRA seed when the event names an adapter", () => {
  const c = new VllmEventConverter({ blockSizeTokens: 4 });
  const update = c.convert(storedEvent({ loraName: "sql-lora" }), 0)!;
  assert.ok(typeof update.data === "object" && "stored" in update.data);
  const expected = hasher.localHashes([1, 2, 3, 4, 5, 6, 7, 8], 4, { loraName: "sql-lora" });
  assert.deepEqual(update.data.stored.blocks.map((b) => b.tokens_hash), expected);
  assert.notDeepEqual(expected, hasher.localHashes([1, 2, 3, 4, 5, 6, 7, 8], 4));
});

Deno.test("VllmEventConverter drops blocks of another size and blocks short of tokens", () => {
  const c = new VllmEventConverter({ blockSizeTokens: 4 });
  assert.equal(
    c.convert(storedEvent({ blockSize: 8, tokenIds: [1, 2, 3, 4, 5, 6, 7, 8] }), 0),
    undefined,
  );
  assert.equal(c.counts.droppedBlocks, 2);
  const short = c.convert(storedEvent({ tokenIds: [1, 2, 3, 4, 5, 6] }), 0)!;
  assert.ok(typeof short.data === "object" && "stored" in short.data);
  assert.deepEqual(short.data.stored.blocks.map((b) => b.block_hash), [101n]);
  assert.equal(c.counts.droppedBlocks, 3);
});

Deno.test("VllmEventConverter hashes EAGLE blocks over block_size + 1 tokens", () => {
  const c = new VllmEventConverter({ blockSizeTokens: 2 });
  const update = c.convert(
    storedEvent({
      blockHashes: [21n, 22n],
      tokenIds: [10, 11, 12, 13, 14],
      blockSize: 2,
      eagle: true,
    }),
    0,
  )!;
  assert.ok(typeof update.data === "object" && "stored" in update.data);
  assert.deepEqual(update.data.stored.blocks.map((b) => b.tokens_hash), [
    hasher.localHashes([10, 11, 12], 3)[0],
    hasher.localHashes([12, 13, 14], 3)[0],
  ]);
});

Deno.test("VllmEventConverter skips off-GPU tiers and self-referencing stores", () => {
  const c = new VllmEventConverter({ blockSizeTokens: 4 });
  assert.equal(c.convert(storedEvent({ medium: "CPU_PINNED" }), 0), undefined);
  assert.equal(
    c.convert({ type: "BlockRemoved", blockHashes: [1n], medium: "DISK" }, 0),
    undefined,
  );
  assert.equal(c.counts.offDeviceEvents, 2);
  // An unknown medium counts as GPU, as in Dynamo.
  assert.notEqual(c.convert(storedEvent({ medium: "HBM3" }), 0), undefined);
  assert.equal(c.convert(storedEvent({ parentBlockHash: 102n }), 0), undefined);
  assert.equal(c.convert(storedEvent({ blockHashes: [5n, 5n] }), 0), undefined);
  assert.equal(c.counts.selfReferencingEvents, 2);
  assert.deepEqual(c.convert({ type: "AllBlocksCleared" }, 3), { data: "cleared", dp_rank: 3 });
});

Deno.test("vllmEventFromInternal() and convert() are inverse for the mocker's events", () => {
  const tokens = [5, 6, 7, 8, 9, 10, 11, 12];
  const local = hasher.localHashes(tokens, 4);
  const seq = hasher.sequenceHashes(local);
  const data = {
    stored: {
      parent_hash: null,
      blocks: [0, 1].map((i) => ({
        block_hash: seq[i]!,
        tokens_hash: local[i]!,
        token_ids: tokens.slice(i * 4, i * 4 + 4),
      })),
    },
  };
  const vllm = vllmEventFromInternal(data, 4);
  assert.equal(vllm.type, "BlockStored");
  const c = new VllmEventConverter({ blockSizeTokens: 4 });
  assert.deepEqual(c.convert(vllm, 0), { data, dp_rank: 0 });
  assert.deepEqual(vllmEventFromInternal("cleared", 4), { type: "AllBlocksCleared" });
  assert.deepEqual(vllmEventFromInternal({ removed: { block_hashes: [1n] } }, 4), {
    type: "BlockRemoved",
    blockHashes: [1n],
    medium: "GPU",
  });
});
