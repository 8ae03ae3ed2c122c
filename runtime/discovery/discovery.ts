import type { Bucket, DiscoveryInstance } from "../protocol/mod.ts";

/** A change in a watched bucket. */
export type DiscoveryEvent =
  | { readonly kind: "added"; readonly key: string; readonly value: DiscoveryInstance }
  | { readonly kind: "removed"; readonly key: string };

/**
 * Where roles find each other. Keys are `{ns}/{component}/{endpoint|topic}/{id hex}`
 * (see `discoveryKey`); values are DiscoveryInstance records. Every implementation passes
 * the shared conformance suite (`conformance.ts`).
 */
export interface DiscoveryBackend {
  /**
   * Writes `value` under `key` in `bucket`. The entry is owned by this process and stays
   * alive (its lease is refreshed) until `delete`, `close`, or the process dies; then it
   * expires within the TTL.
   */
  put(bucket: Bucket, key: string, value: DiscoveryInstance): Promise<void>;
  /** Deletes an entry this process owns (a no-op for an absent key). */
  delete(bucket: Bucket, key: string): Promise<void>;
  /** The live (unexpired, valid) entries of a bucket. */
  list(bucket: Bucket): Promise<Map<string, DiscoveryInstance>>;
  /**
   * Streams the bucket: first an `added` for every live entry, then `added` / `removed` as
   * entries appear, change, disappear or expire, until `signal` aborts. An `added` for a key
   * already seen means its value changed.
   */
  watch(bucket: Bucket, signal: AbortSignal): AsyncIterable<DiscoveryEvent>;
  /** Deletes every entry this process owns, stops refreshing and watching. */
  close(): Promise<void>;
}
