import { basename, dirname, join } from "node:path";
import type { Logger } from "../observability/mod.ts";
import { decodeKeyFromFile } from "./key_encoding.ts";
import type { StoredEntry } from "./_checks.ts";
import { startUnrefTimer } from "./_timers.ts";
import { WatchView } from "./_watch_view.ts";
import {
  forEachLimit,
  IO_CONCURRENCY,
  isExpired,
  listBucketDir,
  readKeyFile,
  type ReadResult,
  removeIfPresent,
  signatureOf,
  statIfPresent,
  TEMP_PREFIX,
} from "./_bucket_dir.ts";

/** What a BucketWatcher needs from its backend. */
export interface BucketWatcherOptions {
  /** The bucket directory as a real path (notify reports real paths); it must exist. */
  readonly dir: string;
  readonly ttlMs: number;
  readonly rescanMs: number;
  readonly maxEntries: number;
  /** False: rescans only, as if on NFS. */
  readonly useFsEvents: boolean;
  readonly log: Logger;
  /** Told about every read of an invalid file; the backend logs each content once. */
  readonly onInvalid: (path: string, contentId: string, reason: string) => void;
}

/** The last version of a file this watcher read; `entry` is undefined for an invalid file. */
interface Known {
  readonly signature: string;
  readonly entry: StoredEntry | undefined;
}

/**
 * Keeps one watcher's picture of one bucket directory current, from two sources:
 * file-system notifications (fast, but absent on NFS for changes made by other hosts) and a
 * periodic rescan (slow, but works everywhere, and is what notices expired leases).
 *
 * Both sources only say "look at this file again"; all reading happens in one drain loop,
 * so the two never race each other and a burst of notifications for one file costs one read.
 */
export class BucketWatcher {
  /** What the consumer has been told, diffed against `#known` when it pulls. */
  readonly view: WatchView;
  #o: BucketWatcherOptions;
  #known = new Map<string, Known>();
  /** File names notifications pointed at, not yet re-read; at most `maxEntries`. */
  #pending = new Set<string>();
  #rescanDue = false;
  #draining = false;
  #drainDone: Promise<void> = Promise.resolve();
  #fsWatcher: Deno.FsWatcher | undefined;
  /** Notification loops not yet ended: the live one, plus briefly one being closed. */
  #fsLoops = new Set<Promise<void>>();
  #timer: number | undefined;
  #stopped = false;
  #stopDone: Promise<void> | undefined;
  // Each condition below is logged when it starts, not on every rescan while it lasts.
  #warnedWatchFailed = false;
  #warnedOverflow = false;
  #warnedScanFailed = false;

  constructor(options: BucketWatcherOptions) {
    this.#o = options;
    this.view = new WatchView((name) => this.#known.get(name)?.entry);
  }

  /**
   * Arms the notification watch, then scans once. The watch goes first so that nothing
   * written during the scan is missed; when start resolves, every live entry is dirty.
   */
  async start(): Promise<void> {
    this.#armFsWatch();
    this.#rescanDue = true;
    this.#kick();
    await this.#drainDone;
    this.#scheduleRescan();
  }

  /** Stops both sources and ends the view; resolves once no I/O of this watcher is in flight. */
  stop(): Promise<void> {
    this.#stopDone ??= this.#stopNow();
    return this.#stopDone;
  }

  async #stopNow(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.view.end();
    this.#closeFsWatcher();
    await Promise.all([...this.#fsLoops, this.#drainDone]);
    this.#pending.clear();
    this.#known.clear();
  }

  #armFsWatch(): void {
    if (this.#stopped || !this.#o.useFsEvents || this.#fsWatcher !== undefined) return;
    let watcher: Deno.FsWatcher;
    try {
      watcher = Deno.watchFs(this.#o.dir, { recursive: false });
    } catch (err) {
      // Out of inotify watches, or a file system without notifications: rescans still work.
      if (!this.#warnedWatchFailed) {
        this.#o.log.warn("Cannot watch discovery bucket, relying on rescans", {
          dir: this.#o.dir,
          rescanMs: this.#o.rescanMs,
          error: err,
        });
      }
      this.#warnedWatchFailed = true;
      return;
    }
    this.#warnedWatchFailed = false;
    this.#fsWatcher = watcher;
    const loop = this.#pumpFsEvents(watcher).finally(() => this.#fsLoops.delete(loop));
    this.#fsLoops.add(loop);
  }

  async #pumpFsEvents(watcher: Deno.FsWatcher): Promise<void> {
    try {
      for await (const event of watcher) this.#onFsEvent(event);
    } catch (err) {
      if (!this.#stopped) {
        this.#o.log.warn("Discovery bucket watch failed, relying on rescans", {
          dir: this.#o.dir,
          error: err,
        });
      }
    } finally {
      // Cleared so the next rescan re-arms it.
      if (this.#fsWatcher === watcher) this.#closeFsWatcher();
    }
  }

  #closeFsWatcher(): void {
    const watcher = this.#fsWatcher;
    this.#fsWatcher = undefined;
    try {
      watcher?.close();
    } catch {
      // Already closed: nothing to release.
    }
  }

  #onFsEvent(event: Deno.FsEvent): void {
    for (const path of event.paths) {
      if (path === this.#o.dir) {
        // The directory itself was removed or moved: this watch will never fire again. The
        // rescan recreates the directory and re-arms the watch.
        if (event.kind === "remove" || event.kind === "rename") {
          this.#closeFsWatcher();
          this.#rescanDue = true;
        }
        continue;
      }
      if (dirname(path) !== this.#o.dir) continue;
      const name = basename(path);
      if (name.startsWith(TEMP_PREFIX) || decodeKeyFromFile(name) === undefined) continue;
      // Every kind (create, modify, rename, remove, close-after-write) means the same thing
      // here: read the file again. Lease touches arrive as "modify" too; the re-read finds
      // the same text and emits nothing.
      if (this.#pending.size < this.#o.maxEntries) this.#pending.add(name);
      else this.#rescanDue = true; // Too many to track one by one: one full scan covers them.
    }
    this.#kick();
  }

  #scheduleRescan(): void {
    if (this.#stopped) return;
    this.#timer = startUnrefTimer(() => {
      this.#rescanDue = true;
      this.#kick();
      this.#scheduleRescan();
    }, this.#o.rescanMs);
  }

  #kick(): void {
    if (this.#draining || this.#stopped) return;
    this.#draining = true;
    this.#drainDone = this.#drain();
  }

  async #drain(): Promise<void> {
    try {
      while (!this.#stopped) {
        if (this.#rescanDue) {
          this.#rescanDue = false;
          await this.#rescan();
          continue;
        }
        if (this.#pending.size === 0) break;
        const names = [...this.#pending];
        this.#pending.clear();
        await forEachLimit(names, IO_CONCURRENCY, (name) => this.#reread(name));
      }
      this.#warnedScanFailed = false;
    } catch (err) {
      // EACCES, EIO from a sick NFS server…: keep the last known state and let the next
      // rescan try again, rather than reporting every entry removed.
      if (!this.#warnedScanFailed) {
        this.#o.log.warn("Cannot scan discovery bucket, keeping last known entries", {
          dir: this.#o.dir,
          error: err,
        });
      }
      this.#warnedScanFailed = true;
    } finally {
      // Synchronously after the last emptiness check, so a notification that arrives next
      // starts a new drain instead of being stranded.
      this.#draining = false;
    }
  }

  /** Re-reads one file after a notification. */
  async #reread(name: string): Promise<void> {
    const key = decodeKeyFromFile(name);
    if (key === undefined) return;
    await this.#isolated(name, async () => {
      const nowMs = Date.now();
      this.#apply(name, await readKeyFile(this.#o.dir, name, key, { nowMs, ttlMs: this.#o.ttlMs }));
    });
  }

  /** Checks one listed file during a rescan: expire it, skip it if unchanged, else read it. */
  async #recheck(name: string, key: string): Promise<void> {
    const { dir, ttlMs } = this.#o;
    const path = join(dir, name);
    await this.#isolated(name, async () => {
      const info = await statIfPresent(path);
      if (info === undefined) return this.#apply(name, { kind: "absent" });
      if (isExpired(info, Date.now(), ttlMs)) {
        // Its owner stopped refreshing: it died, or stalled past the TTL. A stalled owner
        // rewrites the file on its next refresh, so deleting is safe either way.
        this.#apply(name, { kind: "absent" });
        if (await removeIfPresent(path)) {
          this.#o.log.info("Removed expired discovery entry", { key, dir });
        }
        return;
      }
      if (this.#known.get(name)?.signature === signatureOf(info)) return;
      this.#apply(name, await readKeyFile(dir, name, key, { nowMs: Date.now(), ttlMs }));
    });
  }

  /**
   * Runs one file's I/O so that its failure (a file with mode 000, an EIO on one NFS read)
   * leaves that file's last known state alone instead of failing the whole scan.
   */
  async #isolated(name: string, io: () => Promise<void>): Promise<void> {
    try {
      await io();
    } catch (err) {
      const reason = `unreadable: ${err instanceof Error ? err.message : String(err)}`;
      this.#o.onInvalid(join(this.#o.dir, name), "unreadable", reason);
    }
  }

  async #rescan(): Promise<void> {
    const { dir, maxEntries } = this.#o;
    const listing = await listBucketDir(dir, maxEntries);
    if (listing.missing) {
      await Deno.mkdir(dir, { recursive: true });
      this.#closeFsWatcher();
    }
    if (listing.truncated && !this.#warnedOverflow) {
      this.#o.log.warn("Discovery bucket holds more entries than the limit; ignoring the rest", {
        dir,
        maxEntries,
      });
    }
    this.#warnedOverflow = listing.truncated;

    const listed = new Set(listing.keys.map(([name]) => name));
    const unlisted = [...this.#known.keys()].filter((name) => !listed.has(name));
    // A truncated listing says nothing about the names it did not reach: read those.
    if (listing.truncated) await forEachLimit(unlisted, IO_CONCURRENCY, (n) => this.#reread(n));
    else for (const name of unlisted) this.#apply(name, { kind: "absent" });

    await forEachLimit(listing.keys, IO_CONCURRENCY, ([name, key]) => this.#recheck(name, key));
    this.#armFsWatch();
  }

  #apply(name: string, result: ReadResult): void {
    const before = this.#known.get(name);
    if (result.kind === "absent" || result.kind === "expired") {
      if (before === undefined) return;
      this.#known.delete(name);
      if (before.entry !== undefined) this.view.markDirty(name);
      return;
    }
    if (before === undefined && this.#known.size >= this.#o.maxEntries) {
      if (!this.#warnedOverflow) {
        this.#o.log.warn("Discovery bucket holds more entries than the limit; ignoring the rest", {
          dir: this.#o.dir,
          maxEntries: this.#o.maxEntries,
        });
      }
      this.#warnedOverflow = true;
      return;
    }
    if (result.kind === "invalid") {
      this.#o.onInvalid(join(this.#o.dir, name), result.contentId, result.reason);
    }
    const entry = result.kind === "live" ? result.entry : undefined;
    this.#known.set(name, { signature: result.signature, entry });
    if (before?.entry?.text !== entry?.text) this.view.markDirty(name);
  }
}
