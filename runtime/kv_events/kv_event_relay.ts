import { DynamoError } from "../errors/mod.ts";
import { Logger } from "../observability/mod.ts";
import type { KvCacheEvent, KvStoredBlock, RouterEvent } from "../protocol/mod.ts";
import { Ring } from "./_ring.ts";
import type { KvEventUpdate } from "./kv_event_batcher.ts";

/** Options for `KvEventRelay`. */
export interface KvEventRelayOptions {
  /** This worker's discovery instance id: every RouterEvent's `worker_id`. */
  readonly workerId: number;
  /** Sends one event on (the worker publishes it on the event plane). Exceptions are logged. */
  readonly publish: (event: RouterEvent) => void;
  /** Published events kept for `query` (Dynamo's `WORKER_KV_INDEXER_BUFFER_SIZE`). Default 1024. */
  readonly ringCapacity?: number;
  /**
   * Blocks the worker-local view holds (all ranks). Past it new blocks are not tracked and
   * the dump misses them (logged); GPU caches are far smaller. Default 1,048,576.
   */
  readonly maxTrackedBlocks?: number;
  /** Blocks per Stored event of a dump, so each streamed item stays small. Default 128. */
  readonly maxDumpBlocksPerEvent?: number;
  readonly logger?: Logger;
}

/** The worker's state as events: applied in order to an empty index, they rebuild it. */
export interface KvEventDump {
  /** The id of the last event the state includes; live events after it follow on. */
  readonly lastEventId: number;
  /** Stored events only, parents before children; each carries `event_id: lastEventId`. */
  readonly events: readonly KvCacheEvent[];
}

interface ViewBlock {
  readonly parent: bigint | null;
  readonly tokensHash: bigint;
  readonly tokenIds: readonly number[] | undefined;
}

/**
 * The worker's side of KV-event delivery (Dynamo's publisher plus its worker-local indexer):
 * numbers events per worker from 1, publishes them as RouterEvents, keeps the last
 * `ringCapacity` of them so a router that saw a gap can ask for the range it missed
 * (`query`), and keeps a view of the blocks currently stored, per dp rank, so a router can
 * rebuild this worker from scratch when the range has left the ring (`dump`).
 *
 * One id sequence per worker, across dp ranks (each event still carries its rank); Dynamo
 * runs one publisher, hence one sequence, per rank.
 */
export class KvEventRelay {
  readonly workerId: number;
  readonly #publish: (event: RouterEvent) => void;
  readonly #ring: Ring<KvCacheEvent>;
  readonly #maxTrackedBlocks: number;
  readonly #maxDumpBlocks: number;
  readonly #logger: Logger;
  /** dp rank → block_hash → block. Map order is store order, which keeps dumps stable. */
  readonly #view = new Map<number, Map<bigint, ViewBlock>>();
  #trackedBlocks = 0;
  #untrackedBlocks = 0;
  #lastEventId = 0;

  constructor(options: KvEventRelayOptions) {
    this.workerId = options.workerId;
    this.#publish = options.publish;
    this.#ring = new Ring(positive("ringCapacity", options.ringCapacity ?? 1024));
    this.#maxTrackedBlocks = positive("maxTrackedBlocks", options.maxTrackedBlocks ?? 1 << 20);
    this.#maxDumpBlocks = positive("maxDumpBlocksPerEvent", options.maxDumpBlocksPerEvent ?? 128);
    this.#logger = options.logger ?? new Logger("kv_events");
  }

  /** The id of the last event published; 0 before the first. */
  get lastEventId(): number {
    return this.#lastEventId;
  }

  /** The oldest id `query` can still return, or undefined while nothing is buffered. */
  get oldestBufferedId(): number | undefined {
    return this.#ring.at(0)?.event_id;
  }

  /** Blocks in the worker-local view, all ranks. */
  get trackedBlocks(): number {
    return this.#trackedBlocks;
  }

  /** Numbers `update`, records it, publishes it; returns the numbered event. */
  relay(update: KvEventUpdate): KvCacheEvent {
    const event: KvCacheEvent = {
      event_id: ++this.#lastEventId,
      data: update.data,
      dp_rank: update.dp_rank,
    };
    this.#ring.push(event);
    this.#apply(event);
    try {
      this.#publish({ worker_id: this.workerId, event });
    } catch (err) {
      this.#logger.warn("Cannot publish KV event", { event_id: event.event_id, err });
    }
    return event;
  }

  /** `relay` for each update, in order. */
  relayAll(updates: readonly KvEventUpdate[]): void {
    for (const update of updates) this.relay(update);
  }

  /**
   * The published events with ids in `[startId, min(endId, lastEventId)]`, oldest first;
   * undefined when some of them have already left the ring (ask for a `dump()` then).
   * Throws `invalid_request` for ids that are not integers >= 1 with startId <= endId.
   */
  query(startId: number, endId: number): KvCacheEvent[] | undefined {
    if (
      !Number.isSafeInteger(startId) || !Number.isSafeInteger(endId) || startId < 1 ||
      startId > endId
    ) {
      throw new DynamoError(
        "invalid_request",
        "invalid_event_range",
        `Cannot query KV events ${startId}..${endId}: ids must be integers with 1 <= start_id <= end_id`,
      );
    }
    const last = Math.min(endId, this.#lastEventId);
    if (startId > last) return [];
    const oldest = this.oldestBufferedId;
    if (oldest === undefined || startId < oldest) return undefined;
    const out: KvCacheEvent[] = [];
    for (let id = startId; id <= last; id++) out.push(this.#ring.at(id - oldest)!);
    return out;
  }

  /**
   * The blocks stored now, as Stored events that rebuild them from empty: per rank, a
   * depth-first walk from the root blocks, one event per chain of single children (split
   * every `maxDumpBlocksPerEvent` blocks). Blocks whose parent is gone are left out: a
   * router drops a Stored event whose parent it does not know, so it could not hold them.
   */
  dump(): KvEventDump {
    const lastEventId = this.#lastEventId;
    const events: KvCacheEvent[] = [];
    for (const [dpRank, blocks] of this.#view) {
      for (const data of this.#dumpRank(blocks)) {
        events.push({ event_id: lastEventId, data, dp_rank: dpRank });
      }
    }
    return { lastEventId, events };
  }

  #dumpRank(blocks: Map<bigint, ViewBlock>): KvCacheEvent["data"][] {
    const children = new Map<bigint | null, bigint[]>();
    for (const [hash, block] of blocks) {
      if (block.parent !== null && !blocks.has(block.parent)) continue; // orphan
      const siblings = children.get(block.parent);
      if (siblings === undefined) children.set(block.parent, [hash]);
      else siblings.push(hash);
    }
    const out: KvCacheEvent["data"][] = [];
    // Each entry starts a chain: [parent, first block]. Iterative: chains can be long.
    const starts: [bigint | null, bigint][] = (children.get(null) ?? []).map((h) => [null, h]);
    starts.reverse(); // popped in store order
    while (starts.length > 0) {
      const [parent, first] = starts.pop()!;
      const chain: KvStoredBlock[] = [];
      let hash = first;
      for (;;) {
        const block = blocks.get(hash)!;
        chain.push(
          block.tokenIds === undefined
            ? { block_hash: hash, tokens_hash: block.tokensHash }
            : { block_hash: hash, tokens_hash: block.tokensHash, token_ids: block.tokenIds },
        );
        const next = children.get(hash) ?? [];
        if (next.length === 1 && chain.length < this.#maxDumpBlocks) {
          hash = next[0]!;
          continue;
        }
        for (let i = next.length - 1; i >= 0; i--) starts.push([hash, next[i]!]);
        break;
      }
      out.push({ stored: { parent_hash: parent, blocks: chain } });
    }
    return out;
  }

  #apply(event: KvCacheEvent): void {
    const { data } = event;
    if (data === "cleared") {
      // The router applies Cleared to every rank of the worker; so does the view.
      this.#view.clear();
      this.#trackedBlocks = 0;
      return;
    }
    let blocks = this.#view.get(event.dp_rank);
    if ("removed" in data) {
      if (blocks === undefined) return;
      for (const h of data.removed.block_hashes) {
        if (blocks.delete(h)) this.#trackedBlocks--;
      }
      return;
    }
    if (blocks === undefined) this.#view.set(event.dp_rank, blocks = new Map());
    let parent = data.stored.parent_hash;
    for (const b of data.stored.blocks) {
      const known = blocks.has(b.block_hash);
      if (!known && this.#trackedBlocks >= this.#maxTrackedBlocks) {
        if (this.#untrackedBlocks++ % 10_000 === 0) {
          this.#logger.warn("KV dump will be incomplete: too many blocks to track", {
            max_tracked_blocks: this.#maxTrackedBlocks,
          });
        }
      } else {
        if (!known) this.#trackedBlocks++;
        blocks.set(b.block_hash, {
          parent,
          tokensHash: b.tokens_hash,
          tokenIds: b.token_ids,
        });
      }
      parent = b.block_hash;
    }
  }
}

function positive(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new DynamoError(
      "invalid_request",
      "invalid_option",
      `Cannot create KV event relay: ${name} must be a positive integer, got ${value}`,
      { param: name },
    );
  }
  return value;
}
