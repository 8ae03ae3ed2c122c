/**
 * KV index: the KV-aware router's view of which worker holds which KV cache blocks. An
 * event-sourced radix tree (`KvIndex`) fed by workers' Stored / Removed / Cleared events,
 * answering `findMatches()` (per-worker prefix overlap in blocks and tree sizes, written into a
 * reusable `OverlapBuffer` so that routing allocates nothing) for worker selection; and
 * `ApproxPruner`, which stands in for events in approximate mode (`--no-router-kv-events`)
 * by recording routing decisions with a TTL and a size bound. Pure cores: no clocks, no I/O.
 * Not here: hashing tokens (runtime/tokens), decoding events (runtime/protocol, transport),
 * the cost function and selection (runtime/router).
 * @module
 */
export {
  type ApplyStatus,
  DEFAULT_MAX_TREE_SIZE_BLOCKS,
  KvIndex,
  type KvIndexOptions,
  MAX_TREE_SIZE_BLOCKS_LIMIT,
  OverlapBuffer,
  type StoredBlockInput,
  WORKER_KEY_LIMIT,
  type WorkerKey,
} from "./kv_index.ts";
export {
  ApproxPruner,
  type ApproxPrunerOptions,
  DEFAULT_APPROX_MAX_TREE_SIZE_BLOCKS,
  DEFAULT_APPROX_TTL_MS,
  DEFAULT_PRUNE_TARGET_RATIO,
  type PruneResult,
} from "./approx_pruner.ts";
