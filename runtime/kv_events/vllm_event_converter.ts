import { Logger } from "../observability/mod.ts";
import { DynamoError } from "../errors/mod.ts";
import type { KvCacheEventData, KvStoredBlock } from "../protocol/mod.ts";
import { BlockHasher } from "../tokens/mod.ts";
import type { KvEventUpdate } from "./kv_event_batcher.ts";
import type { VllmBlockStored, VllmEvent } from "./vllm_wire.ts";

/** Options for `VllmEventConverter`. */
export interface VllmEventConverterOptions {
  /** The worker's KV block size: the size the router hashes prompts with. */
  readonly blockSizeTokens: number;
  /** Each kind of warning about unpublishable blocks is logged at most this often (Dynamo: 3). */
  readonly maxBlockWarnings?: number;
  readonly logger?: Logger;
}

/** What the converter left out, for metrics and tests. */
export interface VllmConversionCounts {
  /** Stored blocks dropped: wrong block size, too few token ids, or after such a block. */
  droppedBlocks: number;
  /** Events about blocks off the GPU (offloaded tiers), which the router does not index. */
  offDeviceEvents: number;
  /** Stored events naming a hash twice (with their parent), which would loop the tree. */
  selfReferencingEvents: number;
}

/**
 * Tiers vLLM's `medium` may name other than the GPU (Dynamo's `StorageTier::from_kv_medium`).
 * Unknown names count as GPU, as in Dynamo, so a new spelling never silently hides events.
 */
const OFF_DEVICE_MEDIA: ReadonlySet<string> = new Set([
  "CPU",
  "CPU_PINNED",
  "CPU_TIER1",
  "CPU_TIER2",
  "DISK",
  "NVME",
  "EXTERNAL",
  "NETWORK",
  "REMOTE",
  "SHARED",
]);

/**
 * Turns vLLM events into Dynamo's internal events (`zmq_wire.rs` `convert_event`). Stored
 * blocks get `tokens_hash` recomputed from their token ids (XXH3-64, seed 1337 or the LoRA
 * seed) at the worker's block size: the router walks its tree by that hash, never by vLLM's
 * own `block_hash`. Blocks of another size cannot match what the router hashes, so they and
 * every block after them are dropped.
 */
export class VllmEventConverter {
  readonly counts: VllmConversionCounts = {
    droppedBlocks: 0,
    offDeviceEvents: 0,
    selfReferencingEvents: 0,
  };
  readonly #blockSize: number;
  readonly #maxWarnings: number;
  readonly #logger: Logger;
  readonly #hasher = new BlockHasher();
  #warnings = 0;

  constructor(options: VllmEventConverterOptions) {
    if (!Number.isInteger(options.blockSizeTokens) || options.blockSizeTokens < 1) {
      throw new RangeError(
        `Cannot convert vLLM KV events: blockSizeTokens must be a positive integer, got ${options.blockSizeTokens}`,
      );
    }
    this.#blockSize = options.blockSizeTokens;
    this.#maxWarnings = options.maxBlockWarnings ?? 3;
    this.#logger = options.logger ?? new Logger("kv_events");
  }

  /** The internal event for `event` on `dpRank`, or undefined when nothing is left to publish. */
  convert(event: VllmEvent, dpRank: number): KvEventUpdate | undefined {
    switch (event.type) {
      case "AllBlocksCleared":
        return { data: "cleared", dp_rank: dpRank };
      case "BlockRemoved":
        if (this.#offDevice(event.medium)) return undefined;
        if (event.blockHashes.length === 0) return undefined;
        return { data: { removed: { block_hashes: [...event.blockHashes] } }, dp_rank: dpRank };
      case "BlockStored": {
        if (this.#offDevice(event.medium)) return undefined;
        if (this.#selfReferencing(event)) return undefined;
        const blocks = this.#storedBlocks(event);
        if (blocks.length === 0) return undefined;
        return {
          data: { stored: { parent_hash: event.parentBlockHash, blocks } },
          dp_rank: dpRank,
        };
      }
    }
  }

  #offDevice(medium: string | null): boolean {
    if (medium === null || !OFF_DEVICE_MEDIA.has(medium)) return false;
    this.counts.offDeviceEvents++;
    return true;
  }

  #selfReferencing(event: VllmBlockStored): boolean {
    const seen = new Set<bigint>();
    if (event.parentBlockHash !== null) seen.add(event.parentBlockHash);
    for (const h of event.blockHashes) {
      if (!seen.has(h)) {
        seen.add(h);
        continue;
      }
      if (this.counts.selfReferencingEvents++ < this.#maxWarnings) {
        this.#logger.warn("Dropping a stored KV event that names a block hash twice", {
          block_hash: h.toString(),
        });
      }
      return true;
    }
    return false;
  }

  #storedBlocks(event: VllmBlockStored): KvStoredBlock[] {
    const n = event.blockHashes.length;
    const bs = this.#blockSize;
    if (event.blockSize !== bs) {
      this.#dropBlocks(n, `block size is ${event.blockSize} tokens, not ${bs}`);
      return [];
    }
    // EAGLE blocks hash a window one token wider than the block, starting at the block.
    const window = event.eagle === true ? bs + 1 : bs;
    const complete = Math.min(n, Math.floor((event.tokenIds.length - (window - bs)) / bs));
    if (complete < n) {
      this.#dropBlocks(
        n - complete,
        `token_ids has ${event.tokenIds.length} tokens, too few for ${n} blocks`,
      );
    }
    const loraName = event.loraName ?? undefined;
    const blocks: KvStoredBlock[] = new Array(Math.max(0, complete));
    for (let i = 0; i < complete; i++) {
      const tokenIds = event.tokenIds.slice(i * bs, i * bs + window);
      blocks[i] = {
        block_hash: event.blockHashes[i]!,
        tokens_hash: this.#hasher.localHashes(tokenIds, window, { loraName })[0]!,
        token_ids: tokenIds,
      };
    }
    return blocks;
  }

  #dropBlocks(count: number, why: string): void {
    this.counts.droppedBlocks += count;
    if (this.#warnings++ < this.#maxWarnings) {
      this.#logger.warn("KV blocks not published", {
        blocks: count,
        reason: why,
        worker_block_size: this.#blockSize,
      });
    }
  }
}

/**
 * An internal event as vLLM would publish it (what the mocker sends): `block_hashes` are the
 * blocks' `block_hash`es, `token_ids` their tokens concatenated, medium "GPU", no LoRA.
 * Stored blocks must carry `token_ids`, `blockSizeTokens` each.
 */
export function vllmEventFromInternal(data: KvCacheEventData, blockSizeTokens: number): VllmEvent {
  if (data === "cleared") return { type: "AllBlocksCleared" };
  if ("removed" in data) {
    return { type: "BlockRemoved", blockHashes: data.removed.block_hashes, medium: "GPU" };
  }
  const tokenIds: number[] = [];
  for (const block of data.stored.blocks) {
    if (block.token_ids === undefined || block.token_ids.length !== blockSizeTokens) {
      throw new DynamoError(
        "internal",
        "invalid_kv_event",
        `Cannot encode stored block ${block.block_hash} for vLLM: it needs ${blockSizeTokens} token ids, has ${
          block.token_ids?.length ?? "none"
        }`,
      );
    }
    for (const t of block.token_ids) tokenIds.push(t);
  }
  return {
    type: "BlockStored",
    blockHashes: data.stored.blocks.map((b) => b.block_hash),
    parentBlockHash: data.stored.parent_hash,
    tokenIds,
    blockSize: blockSizeTokens,
    loraId: null,
    medium: "GPU",
    loraName: null,
  };
}
