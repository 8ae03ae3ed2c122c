import { join } from "node:path";
import { ENV, readEnv } from "../config/env.ts";
import { DynamoError } from "../errors/mod.ts";
import { Logger } from "../observability/mod.ts";
import type { Bucket, DiscoveryInstance } from "../protocol/mod.ts";
import type { DiscoveryBackend, DiscoveryEvent } from "./discovery.ts";
import {
  checkBucket,
  checkKey,
  closedError,
  encodeValue,
  ioError,
  MAX_WATCHERS_PER_BACKEND,
} from "./_checks.ts";
import {
  forEachLimit,
  IO_CONCURRENCY,
  isExpired,
  listBucketDir,
  readKeyFile,
  removeIfPresent,
  statIfPresent,
  writeFileAtomic,
} from "./_bucket_dir.ts";
import { BucketWatcher } from "./_bucket_watcher.ts";
import { startUnrefTimer } from "./_timers.ts";

/** How FileDiscovery is set up. Every process sharing a directory must use the same `ttlMs`. */
export interface FileDiscoveryOptions {
  /** The shared directory; buckets are its subdirectories (`rootDir/v1/instances`, …). */
  readonly rootDir: string;
  /** Lease length: an entry whose file was not touched for this long is dead. Default 10 s. */
  readonly ttlMs?: number;
  /** How often each watcher lists its directory (NFS gives no notifications). Default 1 s. */
  readonly rescanMs?: number;
  /** Most entries read from, or owned in, one bucket. Default 10 000. */
  readonly maxEntriesPerBucket?: number;
  /**
   * Whether watchers use file-system notifications as well as rescans. Default true. On NFS
   * they only report this host's own writes, so `false` (rescans only) costs nothing there
   * and saves inotify watches; tests use it to exercise the NFS path.
   */
  readonly useFsEvents?: boolean;
}

/** Dynamo's default lease. */
export const DEFAULT_TTL_MS = 10_000;
/** Dynamo's minimum lease. */
export const MIN_TTL_MS = 1_000;
const DEFAULT_RESCAN_MS = 1_000;
/** Below this a rescan loop would mostly be listing directories. */
const MIN_RESCAN_MS = 50;
const DEFAULT_MAX_ENTRIES_PER_BUCKET = 10_000;
/** Distinct invalid files remembered so each is logged once; the oldest is forgotten first. */
const MAX_INVALID_REMEMBERED = 1_024;

const log = new Logger("discovery");
const utf8 = new TextEncoder();

/** `$DYN_FILE_KV` if set, else `dynamo` in the temp directory (TMPDIR, TMP, TEMP, or /tmp). */
export function defaultDiscoveryDir(): string {
  const configured = readEnv(ENV.fileKvDir);
  if (configured !== undefined) return configured;
  const tempDir = Deno.env.get("TMPDIR") || Deno.env.get("TMP") || Deno.env.get("TEMP") || "/tmp";
  return join(tempDir, "dynamo");
}

/**
 * Discovery through a shared directory, laid out exactly as Dynamo's file store lays it out,
 * so the two can share one: one JSON file per key, named with the percent-encoded key,
 * written atomically; the lease is the file's mtime.
 *
 * Every `ttlMs / 3` this process touches the files it owns, rewrites any that vanished (a
 * peer swept them while this process was stalled), and deletes files in the buckets it uses
 * whose mtime is older than the TTL: the leftovers of processes that died without cleaning
 * up. A SIGKILLed worker therefore disappears within TTL plus one refresh or rescan.
 *
 * Dynamo refreshes every `max(ttl / 3, 1 s)`; we drop the 1 s floor, because at the minimum
 * TTL of 1 s it refreshes exactly as often as entries expire, so peers keep sweeping live
 * entries. With `ttl / 3` an entry always has two refreshes of slack. Lease times compare
 * this host's clock with mtimes set by other hosts' clocks, so hosts sharing the directory
 * need clocks synchronised to well within the TTL (NTP does this).
 */
export class FileDiscovery implements DiscoveryBackend {
  readonly rootDir: string;
  readonly ttlMs: number;
  readonly refreshMs: number;
  readonly rescanMs: number;
  readonly maxEntriesPerBucket: number;
  readonly useFsEvents: boolean;
  /** Exact bytes of every owned file, by bucket then file name, for rewriting vanished ones. */
  #owned = new Map<Bucket, Map<string, Uint8Array>>();
  /** Buckets this process put into or watched: the ones its refresh sweeps. At most 3. */
  #activeBuckets = new Set<Bucket>();
  #watchers = new Set<BucketWatcher>();
  /** Mutations of owned files run one at a time, so a refresh never resurrects a deleted key. */
  #serial: Promise<void> = Promise.resolve();
  #refreshTimer: number | undefined;
  #refreshDone: Promise<void> = Promise.resolve();
  /** Path → content id of invalid files already logged; at most MAX_INVALID_REMEMBERED. */
  #invalidLogged = new Map<string, string>();
  #closed = false;
  #closeDone: Promise<void> | undefined;

  private constructor(resolved: Required<FileDiscoveryOptions>) {
    this.rootDir = resolved.rootDir;
    this.ttlMs = resolved.ttlMs;
    this.refreshMs = Math.floor(resolved.ttlMs / 3);
    this.rescanMs = resolved.rescanMs;
    this.maxEntriesPerBucket = resolved.maxEntriesPerBucket;
    this.useFsEvents = resolved.useFsEvents;
  }

  /** Validates options, creates the root directory and starts the lease refresh. */
  static async open(options: FileDiscoveryOptions): Promise<FileDiscovery> {
    const ttlMs = options.ttlMs ?? DEFAULT_TTL_MS;
    checkAtLeast("ttlMs", ttlMs, MIN_TTL_MS);
    const rescanMs = options.rescanMs ?? DEFAULT_RESCAN_MS;
    checkAtLeast("rescanMs", rescanMs, MIN_RESCAN_MS);
    const maxEntries = options.maxEntriesPerBucket ?? DEFAULT_MAX_ENTRIES_PER_BUCKET;
    checkAtLeast("maxEntriesPerBucket", maxEntries, 1);
    if (options.rootDir === "") {
      throw new DynamoError(
        "invalid_request",
        "invalid_discovery_option",
        "Cannot open file discovery: rootDir is empty",
        { param: "rootDir" },
      );
    }
    try {
      await Deno.mkdir(options.rootDir, { recursive: true });
    } catch (err) {
      throw ioError(`create discovery directory ${options.rootDir}`, err);
    }
    const discovery = new FileDiscovery({
      rootDir: options.rootDir,
      ttlMs,
      rescanMs,
      maxEntriesPerBucket: maxEntries,
      useFsEvents: options.useFsEvents ?? true,
    });
    discovery.#scheduleRefresh();
    return discovery;
  }

  async put(bucket: Bucket, key: string, value: DiscoveryInstance): Promise<void> {
    if (this.#closed) throw closedError("register a discovery entry");
    checkBucket(bucket);
    const name = checkKey(key);
    const bytes = utf8.encode(encodeValue(key, value).text);
    await this.#exclusive(async () => {
      if (this.#closed) throw closedError("register a discovery entry");
      let owned = this.#owned.get(bucket);
      if (owned === undefined) this.#owned.set(bucket, owned = new Map());
      if (!owned.has(name) && owned.size >= this.maxEntriesPerBucket) {
        throw new DynamoError(
          "overloaded",
          "too_many_entries",
          `Cannot register ${
            JSON.stringify(key)
          }: this process already owns ${owned.size} entries in ${bucket}, the limit`,
        );
      }
      try {
        await writeFileAtomic(await this.#bucketDir(bucket), name, bytes);
      } catch (err) {
        throw ioError(`register ${JSON.stringify(key)} in ${this.rootDir}`, err);
      }
      owned.set(name, bytes);
      this.#activeBuckets.add(bucket);
    });
  }

  /** Deletes an entry this process owns. Others' entries are left alone: their owner would rewrite them. */
  async delete(bucket: Bucket, key: string): Promise<void> {
    if (this.#closed) throw closedError("delete a discovery entry");
    checkBucket(bucket);
    const name = checkKey(key);
    await this.#exclusive(async () => {
      const owned = this.#owned.get(bucket);
      if (owned?.has(name) !== true) return;
      try {
        await removeIfPresent(join(this.rootDir, bucket, name));
      } catch (err) {
        // Still owned, so the lease keeps being refreshed until a delete succeeds.
        throw ioError(`delete ${JSON.stringify(key)} from ${this.rootDir}`, err);
      }
      owned.delete(name);
    });
  }

  async list(bucket: Bucket): Promise<Map<string, DiscoveryInstance>> {
    if (this.#closed) throw closedError("list discovery entries");
    checkBucket(bucket);
    try {
      return await this.#list(bucket);
    } catch (err) {
      throw ioError(`list ${bucket} in ${this.rootDir}`, err);
    }
  }

  async #list(bucket: Bucket): Promise<Map<string, DiscoveryInstance>> {
    const dir = join(this.rootDir, bucket);
    const listing = await listBucketDir(dir, this.maxEntriesPerBucket);
    if (listing.truncated) {
      log.warn("Discovery bucket holds more entries than the limit; listing only some", {
        dir,
        maxEntries: this.maxEntriesPerBucket,
      });
    }
    const found = new Map<string, DiscoveryInstance>();
    const nowMs = Date.now();
    await forEachLimit(listing.keys, IO_CONCURRENCY, async ([name, key]) => {
      let result;
      try {
        result = await readKeyFile(dir, name, key, { nowMs, ttlMs: this.ttlMs });
      } catch (err) {
        // One unreadable file (mode 000, an EIO on one NFS read) must not fail the listing.
        const reason = `unreadable: ${err instanceof Error ? err.message : String(err)}`;
        this.#logInvalid(join(dir, name), "unreadable", reason);
        return;
      }
      if (result.kind === "invalid") {
        this.#logInvalid(join(dir, name), result.contentId, result.reason);
      }
      if (result.kind === "live") found.set(key, result.entry.value);
    });
    // Directory order is arbitrary; sorted keys make listings stable for callers and logs.
    return new Map([...found].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }

  async *watch(
    bucket: Bucket,
    signal: AbortSignal,
  ): AsyncGenerator<DiscoveryEvent, void, undefined> {
    if (this.#closed) throw closedError("watch discovery");
    checkBucket(bucket);
    if (signal.aborted) return;
    if (this.#watchers.size >= MAX_WATCHERS_PER_BACKEND) {
      throw new DynamoError(
        "overloaded",
        "too_many_watchers",
        `Cannot watch ${bucket}: this process already runs ${MAX_WATCHERS_PER_BACKEND} discovery watchers, the limit`,
      );
    }
    let dir: string;
    try {
      dir = await Deno.realPath(await this.#bucketDir(bucket));
    } catch (err) {
      throw ioError(`watch ${bucket} in ${this.rootDir}`, err);
    }
    this.#activeBuckets.add(bucket);
    const watcher = new BucketWatcher({
      dir,
      ttlMs: this.ttlMs,
      rescanMs: this.rescanMs,
      maxEntries: this.maxEntriesPerBucket,
      useFsEvents: this.useFsEvents,
      log,
      onInvalid: (path, contentId, reason) => this.#logInvalid(path, contentId, reason),
    });
    this.#watchers.add(watcher);
    // Stop on abort right away, not at the consumer's next pull: it may never pull again.
    const onAbort = (): void => void watcher.stop();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      if (signal.aborted || this.#closed) return;
      await watcher.start();
      yield* watcher.view.events();
    } finally {
      signal.removeEventListener("abort", onAbort);
      await watcher.stop();
      this.#watchers.delete(watcher);
    }
  }

  close(): Promise<void> {
    this.#closeDone ??= this.#closeNow();
    return this.#closeDone;
  }

  async #closeNow(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#refreshTimer);
    await Promise.all([...this.#watchers].map((watcher) => watcher.stop()));
    await this.#refreshDone;
    await this.#exclusive(async () => {
      const paths = [...this.#owned].flatMap(([bucket, owned]) =>
        [...owned.keys()].map((name) => join(this.rootDir, bucket, name))
      );
      this.#owned.clear();
      await forEachLimit(paths, IO_CONCURRENCY, async (path) => {
        await removeIfPresent(path).catch((err) => {
          // It expires within the TTL anyway; close() must still finish.
          log.warn("Cannot delete discovery entry on close", { path, error: err });
        });
      });
    });
  }

  #exclusive(fn: () => Promise<void>): Promise<void> {
    const run = this.#serial.then(fn);
    this.#serial = run.catch(() => {});
    return run;
  }

  async #bucketDir(bucket: Bucket): Promise<string> {
    const dir = join(this.rootDir, bucket);
    await Deno.mkdir(dir, { recursive: true });
    return dir;
  }

  #scheduleRefresh(): void {
    if (this.#closed) return;
    this.#refreshTimer = startUnrefTimer(() => {
      this.#refreshDone = this.#refresh().finally(() => this.#scheduleRefresh());
    }, this.refreshMs);
  }

  /** One lease period's work: touch (or rewrite) owned files, then sweep expired ones. Never throws. */
  async #refresh(): Promise<void> {
    try {
      await this.#exclusive(() => this.#touchOwned());
    } catch (err) {
      log.warn("Cannot refresh discovery leases", { root: this.rootDir, error: err });
    }
    for (const bucket of this.#activeBuckets) {
      if (this.#closed) return;
      try {
        await this.#sweep(bucket);
      } catch (err) {
        log.warn("Cannot sweep discovery bucket", { bucket, root: this.rootDir, error: err });
      }
    }
  }

  async #touchOwned(): Promise<void> {
    if (this.#closed) return;
    const files = [...this.#owned].flatMap(([bucket, owned]) =>
      [...owned].map(([name, bytes]) => ({ bucket, name, bytes }))
    );
    await forEachLimit(files, IO_CONCURRENCY, async ({ bucket, name, bytes }) => {
      const now = new Date();
      const path = join(this.rootDir, bucket, name);
      try {
        await Deno.utime(path, now, now);
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) {
          // One failing file must not cost the others their lease.
          log.warn("Cannot refresh discovery lease", { path, error: err });
          return;
        }
        // Gone while we are alive: a peer swept it while this process stalled past the TTL
        // (or someone deleted it by hand). Put it back; watchers see removed, then added.
        try {
          await writeFileAtomic(await this.#bucketDir(bucket), name, bytes);
          log.warn("Rewrote a discovery entry that vanished while this process owned it", {
            path,
          });
        } catch (writeErr) {
          log.warn("Cannot rewrite vanished discovery entry", { path, error: writeErr });
        }
      }
    });
  }

  /** Deletes expired key files and temp files left by writers that died mid-write. */
  async #sweep(bucket: Bucket): Promise<void> {
    const dir = join(this.rootDir, bucket);
    const listing = await listBucketDir(dir, this.maxEntriesPerBucket);
    const owned = this.#owned.get(bucket);
    const names = [
      ...listing.keys.map(([name]) => name).filter((name) => owned?.has(name) !== true),
      ...listing.tempNames,
    ];
    await forEachLimit(names, IO_CONCURRENCY, async (name) => {
      const path = join(dir, name);
      const info = await statIfPresent(path);
      if (info === undefined || !isExpired(info, Date.now(), this.ttlMs)) return;
      if (await removeIfPresent(path)) log.info("Removed expired discovery entry", { path });
    });
  }

  #logInvalid(path: string, contentId: string, reason: string): void {
    if (this.#invalidLogged.get(path) === contentId) return;
    this.#invalidLogged.delete(path);
    if (this.#invalidLogged.size >= MAX_INVALID_REMEMBERED) {
      const oldest = this.#invalidLogged.keys().next().value;
      if (oldest !== undefined) this.#invalidLogged.delete(oldest);
    }
    this.#invalidLogged.set(path, contentId);
    log.warn("Skipping invalid discovery entry", { path, reason });
  }
}

function checkAtLeast(name: string, value: number, minimum: number): void {
  if (!Number.isFinite(value) || value < minimum) {
    throw new DynamoError(
      "invalid_request",
      "invalid_discovery_option",
      `Cannot open file discovery: ${name} is ${value}, must be at least ${minimum}`,
      { param: name },
    );
  }
}
