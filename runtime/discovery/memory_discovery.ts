import { DynamoError } from "../errors/mod.ts";
import type { Bucket, DiscoveryInstance } from "../protocol/mod.ts";
import type { DiscoveryBackend, DiscoveryEvent } from "./discovery.ts";
import {
  checkBucket,
  checkKey,
  closedError,
  encodeValue,
  MAX_WATCHERS_PER_BACKEND,
  type StoredEntry,
} from "./_checks.ts";
import { WatchView } from "./_watch_view.ts";

/** How a MemoryDiscoveryStore is set up. */
export interface MemoryDiscoveryStoreOptions {
  /** Most entries one bucket holds; a put past it fails with `overloaded`. Default 10 000. */
  readonly maxEntriesPerBucket?: number;
}

interface OwnedEntry extends StoredEntry {
  /** The MemoryDiscovery that wrote it: the "process" whose lease keeps it alive. */
  readonly owner: object;
}

type Listener = (key: string) => void;

/**
 * The shared state behind MemoryDiscovery instances, as one etcd is behind many processes.
 * Its methods are what backends call; tests read it through a MemoryDiscovery.
 */
export class MemoryDiscoveryStore {
  readonly maxEntriesPerBucket: number;
  #buckets = new Map<Bucket, Map<string, OwnedEntry>>();
  #listeners = new Map<Bucket, Set<Listener>>();

  constructor(options: MemoryDiscoveryStoreOptions = {}) {
    this.maxEntriesPerBucket = options.maxEntriesPerBucket ?? 10_000;
  }

  /** The entry under `key`, if any. */
  get(bucket: Bucket, key: string): StoredEntry | undefined {
    return this.#buckets.get(bucket)?.get(key);
  }

  /** Every key in a bucket, in insertion order. */
  keys(bucket: Bucket): string[] {
    return [...(this.#buckets.get(bucket)?.keys() ?? [])];
  }

  /** Writes an entry on behalf of `owner` and tells the bucket's listeners. */
  set(bucket: Bucket, entry: StoredEntry, owner: object): void {
    let entries = this.#buckets.get(bucket);
    if (entries === undefined) this.#buckets.set(bucket, entries = new Map());
    if (!entries.has(entry.key) && entries.size >= this.maxEntriesPerBucket) {
      throw new DynamoError(
        "overloaded",
        "too_many_entries",
        `Cannot register ${
          JSON.stringify(entry.key)
        }: ${bucket} already holds ${entries.size} entries, the limit`,
      );
    }
    entries.set(entry.key, { ...entry, owner });
    this.#notify(bucket, entry.key);
  }

  /** Removes `key` if `owner` wrote it (a process cannot delete another's lease). */
  remove(bucket: Bucket, key: string, owner: object): void {
    const entries = this.#buckets.get(bucket);
    if (entries?.get(key)?.owner !== owner) return;
    entries.delete(key);
    this.#notify(bucket, key);
  }

  /** Calls `listener(key)` after every change in `bucket`; returns the unsubscribe function. */
  subscribe(bucket: Bucket, listener: Listener): () => void {
    let listeners = this.#listeners.get(bucket);
    if (listeners === undefined) this.#listeners.set(bucket, listeners = new Set());
    listeners.add(listener);
    return () => listeners.delete(listener);
  }

  #notify(bucket: Bucket, key: string): void {
    for (const listener of this.#listeners.get(bucket) ?? []) listener(key);
  }
}

/**
 * An in-process DiscoveryBackend for unit tests. Each instance stands for one process:
 * it owns what it puts, `close()` deletes that, and `simulateCrash()` drops it as an
 * expired lease would. Several instances on one store see each other's changes.
 */
export class MemoryDiscovery implements DiscoveryBackend {
  readonly store: MemoryDiscoveryStore;
  /** Keys this instance wrote, by bucket; bounded by the store's per-bucket limit. */
  #owned = new Map<Bucket, Set<string>>();
  #views = new Set<WatchView>();
  #closed = false;

  constructor(store: MemoryDiscoveryStore) {
    this.store = store;
  }

  put(bucket: Bucket, key: string, value: DiscoveryInstance): Promise<void> {
    if (this.#closed) return Promise.reject(closedError("register a discovery entry"));
    try {
      checkBucket(bucket);
      checkKey(key);
      this.store.set(bucket, encodeValue(key, value), this);
    } catch (err) {
      return Promise.reject(err);
    }
    let owned = this.#owned.get(bucket);
    if (owned === undefined) this.#owned.set(bucket, owned = new Set());
    owned.add(key);
    return Promise.resolve();
  }

  delete(bucket: Bucket, key: string): Promise<void> {
    if (this.#closed) return Promise.reject(closedError("delete a discovery entry"));
    try {
      checkBucket(bucket);
      checkKey(key);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.#owned.get(bucket)?.delete(key) === true) this.store.remove(bucket, key, this);
    return Promise.resolve();
  }

  list(bucket: Bucket): Promise<Map<string, DiscoveryInstance>> {
    if (this.#closed) return Promise.reject(closedError("list discovery entries"));
    try {
      checkBucket(bucket);
    } catch (err) {
      return Promise.reject(err);
    }
    const keys = this.store.keys(bucket).sort();
    // Copies, as a file read would give: a caller mutating its result must not change the store.
    return Promise.resolve(
      new Map(keys.map((key) => [key, structuredClone(this.store.get(bucket, key)!.value)])),
    );
  }

  async *watch(
    bucket: Bucket,
    signal: AbortSignal,
  ): AsyncGenerator<DiscoveryEvent, void, undefined> {
    if (this.#closed) throw closedError("watch discovery");
    checkBucket(bucket);
    if (signal.aborted) return;
    if (this.#views.size >= MAX_WATCHERS_PER_BACKEND) {
      throw new DynamoError(
        "overloaded",
        "too_many_watchers",
        `Cannot watch ${bucket}: this instance already runs ${MAX_WATCHERS_PER_BACKEND} discovery watchers, the limit`,
      );
    }
    const view = new WatchView((key) => {
      const entry = this.store.get(bucket, key);
      return entry === undefined ? undefined : { ...entry, value: structuredClone(entry.value) };
    });
    // Marks only keys the view can report on, so the dirty set stays within the store's bound.
    const unsubscribe = this.store.subscribe(bucket, (key) => {
      if (this.store.get(bucket, key) !== undefined || view.wasEmitted(key)) view.markDirty(key);
    });
    for (const key of this.store.keys(bucket)) view.markDirty(key);
    const onAbort = (): void => view.end();
    signal.addEventListener("abort", onAbort, { once: true });
    this.#views.add(view);
    try {
      yield* view.events();
    } finally {
      signal.removeEventListener("abort", onAbort);
      unsubscribe();
      this.#views.delete(view);
    }
  }

  close(): Promise<void> {
    this.#shutDown();
    return Promise.resolve();
  }

  /**
   * Test hook: this "process" dies without cleaning up and its lease runs out. Its entries
   * vanish for every watcher, as after a SIGKILL plus the TTL; the instance refuses further
   * use. (Memory has no clock, so there is no TTL to wait for.)
   */
  simulateCrash(): void {
    this.#shutDown();
  }

  #shutDown(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const view of this.#views) view.end();
    for (const [bucket, keys] of this.#owned) {
      for (const key of keys) this.store.remove(bucket, key, this);
    }
    this.#owned.clear();
  }
}
