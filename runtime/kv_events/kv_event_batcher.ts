import type { KvCacheEvent, KvStoredBlock } from "../protocol/mod.ts";
import { Logger } from "../observability/mod.ts";

/** A KV event before the worker numbers it: what engines produce and the relay publishes. */
export type KvEventUpdate = Omit<KvCacheEvent, "event_id">;

/** Options for `KvEventBatcher`. */
export interface KvEventBatcherOptions {
  /** Receives every merged, deduplicated event, in order. */
  readonly emit: (update: KvEventUpdate) => void;
  /** Pending blocks past which the batch is flushed at once (Dynamo's 128). */
  readonly maxBatchBlocks?: number;
  /**
   * Block hashes whose store count is remembered (all ranks together). Past it new hashes are
   * not counted, so their removals pass straight through: safe, only less deduplicated.
   * Default 1,048,576.
   */
  readonly maxTrackedHashes?: number;
  readonly logger?: Logger;
}

/** Dynamo's `DEFAULT_MAX_BATCH_BLOCKS`. */
export const DEFAULT_MAX_BATCH_BLOCKS = 128;

type Pending =
  | { kind: "stored"; dpRank: number; parent: bigint | null; blocks: KvStoredBlock[] }
  | { kind: "removed"; dpRank: number; hashes: bigint[] };

/**
 * The worker-side event pipeline of Dynamo's KV publisher (`event_processor.rs`), as a pure
 * object: merges runs of events and filters duplicate stores.
 *
 * Merging: consecutive Stored events whose parent is the last pending block become one
 * event, as do consecutive Removed events; a change of type or dp rank, a Cleared, more
 * than `maxBatchBlocks` pending blocks, or `flush()` ends the run. The owner calls `flush()`
 * at the end of every engine batch, so merging never waits for input that may not come.
 *
 * Dedup: vLLM can report the same block hash stored more than once (several requests
 * caching identical content). Per dp rank each hash has a store count; a Removed passes a
 * hash on only when its count drops to 0, hashes never seen pass through, and Cleared
 * forgets every count (the router wipes every rank of the worker on Cleared).
 */
export class KvEventBatcher {
  readonly #emit: (update: KvEventUpdate) => void;
  readonly #maxBatchBlocks: number;
  readonly #maxTrackedHashes: number;
  readonly #logger: Logger;
  /** dp rank → block hash → stores not yet matched by a removal. */
  readonly #counts = new Map<number, Map<bigint, number>>();
  #trackedHashes = 0;
  #untracked = 0;
  #pending: Pending | undefined;

  constructor(options: KvEventBatcherOptions) {
    this.#emit = options.emit;
    this.#maxBatchBlocks = options.maxBatchBlocks ?? DEFAULT_MAX_BATCH_BLOCKS;
    this.#maxTrackedHashes = options.maxTrackedHashes ?? 1 << 20;
    this.#logger = options.logger ?? new Logger("kv_events");
  }

  /** Hashes with a live store count. */
  get trackedHashes(): number {
    return this.#trackedHashes;
  }

  /** Adds one event; may emit the run it ends. */
  push(update: KvEventUpdate): void {
    const { data, dp_rank: dpRank } = update;
    const pending = this.#pending;
    if (data === "cleared") {
      this.flush();
      this.#counts.clear();
      this.#trackedHashes = 0;
      this.#emit(update);
      return;
    }
    // Empty runs carry nothing; keeping them out also keeps `blocks.at(-1)` defined below.
    if (
      "removed" in data ? data.removed.block_hashes.length === 0 : data.stored.blocks.length === 0
    ) {
      return;
    }
    if (pending !== undefined && pending.dpRank !== dpRank) this.flush();
    if ("removed" in data) {
      if (this.#pending?.kind === "stored") this.flush();
      const run = this.#pending;
      if (run?.kind === "removed") run.hashes.push(...data.removed.block_hashes);
      else {
        this.#pending = { kind: "removed", dpRank, hashes: [...data.removed.block_hashes] };
      }
    } else {
      const run = this.#pending;
      if (
        run?.kind === "stored" && data.stored.parent_hash === run.blocks.at(-1)!.block_hash
      ) {
        run.blocks.push(...data.stored.blocks);
      } else {
        this.flush();
        this.#pending = {
          kind: "stored",
          dpRank,
          parent: data.stored.parent_hash,
          blocks: [...data.stored.blocks],
        };
      }
    }
    const p = this.#pending!;
    const size = p.kind === "stored" ? p.blocks.length : p.hashes.length;
    if (size > this.#maxBatchBlocks) this.flush();
  }

  /** Emits the pending run, if any. */
  flush(): void {
    const run = this.#pending;
    if (run === undefined) return;
    this.#pending = undefined;
    if (run.kind === "removed") {
      const hashes = this.#filterRemoved(run.dpRank, run.hashes);
      if (hashes.length > 0) {
        this.#emit({ data: { removed: { block_hashes: hashes } }, dp_rank: run.dpRank });
      }
      return;
    }
    this.#trackStored(run.dpRank, run.blocks);
    this.#emit({
      data: { stored: { parent_hash: run.parent, blocks: run.blocks } },
      dp_rank: run.dpRank,
    });
  }

  #trackStored(dpRank: number, blocks: readonly KvStoredBlock[]): void {
    let counts = this.#counts.get(dpRank);
    if (counts === undefined) this.#counts.set(dpRank, counts = new Map());
    for (const { block_hash: h } of blocks) {
      const n = counts.get(h);
      if (n !== undefined) counts.set(h, n + 1);
      else if (this.#trackedHashes < this.#maxTrackedHashes) {
        counts.set(h, 1);
        this.#trackedHashes++;
      } else if (this.#untracked++ % 10_000 === 0) {
        this.#logger.warn("Not deduplicating KV events for some blocks: too many tracked", {
          max_tracked_hashes: this.#maxTrackedHashes,
        });
      }
    }
  }

  #filterRemoved(dpRank: number, hashes: readonly bigint[]): bigint[] {
    const counts = this.#counts.get(dpRank);
    if (counts === undefined) return [...hashes];
    const out: bigint[] = [];
    for (const h of hashes) {
      const n = counts.get(h);
      if (n === undefined) out.push(h);
      else if (n > 1) counts.set(h, n - 1);
      else {
        counts.delete(h);
        this.#trackedHashes--;
        out.push(h);
      }
    }
    return out;
  }
}
