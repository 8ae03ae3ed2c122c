/**
 * KV cache events in Dynamo's internal schema (`lib/kv-router/src/protocols.rs`). Hashes are
 * u64 and travel as bigint; msgpack carries them as 64-bit integers.
 */
export interface KvStoredBlock {
  /** The engine's own (chained) hash of the block; opaque to the router. */
  readonly block_hash: bigint;
  /** XXH3-64 (seed 1337) of the block's token ids: Dynamo's LocalBlockHash. */
  readonly tokens_hash: bigint;
  /** The block's token ids, kept so the event can be re-encoded in vLLM's wire format. */
  readonly token_ids?: readonly number[];
}

export type KvCacheEventData =
  | {
    readonly stored: {
      readonly parent_hash: bigint | null;
      readonly blocks: readonly KvStoredBlock[];
    };
  }
  | { readonly removed: { readonly block_hashes: readonly bigint[] } }
  | "cleared";

export interface KvCacheEvent {
  readonly event_id: number;
  readonly data: KvCacheEventData;
  readonly dp_rank: number;
}

export interface RouterEvent {
  readonly worker_id: number;
  readonly event: KvCacheEvent;
}
