import { join } from "node:path";
import { decodeKeyFromFile } from "./key_encoding.ts";
import { decodeValue, MAX_VALUE_BYTES, type StoredEntry } from "./_checks.ts";

/** Writers name temp files `.tmp_{16 hex}` (as Dynamo does); nothing else starts with a dot. */
export const TEMP_PREFIX = ".tmp_";

/** How many file operations one scan keeps in flight: enough to hide NFS round trips. */
export const IO_CONCURRENCY = 16;

/**
 * What identifies one version of a file without reading it. Our writers rename a fresh
 * inode into place, so a content change always changes `ino`; a plain in-place write changes
 * the size or the mtime. A lease touch changes the mtime too, which costs one small re-read.
 */
export function signatureOf(info: Deno.FileInfo): string {
  return `${info.ino ?? 0}:${info.size}:${info.mtime?.getTime() ?? 0}`;
}

/**
 * A signature without the mtime: what stays the same across lease touches. Used to log an
 * invalid file once, not once per touch (a newer Dynamo may write records we do not know).
 */
export function contentIdOf(info: Deno.FileInfo): string {
  return `${info.ino ?? 0}:${info.size}`;
}

/** Whether a file last touched at `mtime` has outlived its lease. A future mtime (skew) is live. */
export function isExpired(info: Deno.FileInfo, nowMs: number, ttlMs: number): boolean {
  const mtimeMs = info.mtime?.getTime();
  return mtimeMs !== undefined && nowMs - mtimeMs > ttlMs;
}

/** One read of a key file. */
export type ReadResult =
  | { readonly kind: "absent" }
  | { readonly kind: "expired"; readonly signature: string }
  | {
    readonly kind: "invalid";
    readonly signature: string;
    readonly contentId: string;
    readonly reason: string;
  }
  | { readonly kind: "live"; readonly signature: string; readonly entry: StoredEntry };

/**
 * Reads and validates one key file. The stat and the read go through one open handle, so the
 * signature always describes the bytes that were read. Never throws for a missing or bad
 * file; other I/O errors (permissions, a dead NFS server) do throw.
 */
export async function readKeyFile(
  dir: string,
  name: string,
  key: string,
  options: { nowMs: number; ttlMs: number },
): Promise<ReadResult> {
  const path = join(dir, name);
  let file: Deno.FsFile;
  try {
    // Only regular files: opening a FIFO someone left here would block this reader forever.
    // (Deno 2.9's own watchFs stalls on a FIFO in the directory; rescans still work.)
    if (!(await Deno.lstat(path)).isFile) return { kind: "absent" };
    file = await Deno.open(path, { read: true });
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return { kind: "absent" };
    throw err;
  }
  try {
    const info = await file.stat();
    if (!info.isFile) return { kind: "absent" };
    const signature = signatureOf(info);
    if (isExpired(info, options.nowMs, options.ttlMs)) return { kind: "expired", signature };
    const contentId = contentIdOf(info);
    const tooLarge = `larger than ${MAX_VALUE_BYTES} bytes`;
    if (info.size > MAX_VALUE_BYTES) {
      return { kind: "invalid", signature, contentId, reason: tooLarge };
    }
    const text = await readAtMost(file, info.size, MAX_VALUE_BYTES);
    if (text === undefined) return { kind: "invalid", signature, contentId, reason: tooLarge };
    const decoded = decodeValue(key, text);
    if (typeof decoded === "string") {
      return { kind: "invalid", signature, contentId, reason: decoded };
    }
    return { kind: "live", signature, entry: decoded };
  } finally {
    file.close();
  }
}

/**
 * Reads the file as UTF-8, or undefined past `limitBytes`. Starts from the size `stat` gave and
 * grows, since a plain writer may extend the file between the stat and the read.
 */
async function readAtMost(
  file: Deno.FsFile,
  expectedBytes: number,
  limitBytes: number,
): Promise<string | undefined> {
  let buffer = new Uint8Array(Math.min(expectedBytes, limitBytes) + 1);
  let filled = 0;
  for (;;) {
    if (filled === buffer.length) {
      if (buffer.length > limitBytes) return undefined;
      const grown = new Uint8Array(Math.min(buffer.length * 2, limitBytes + 1));
      grown.set(buffer);
      buffer = grown;
    }
    const n = await file.read(buffer.subarray(filled));
    if (n === null) break;
    filled += n;
  }
  return new TextDecoder().decode(buffer.subarray(0, filled));
}

/** A bucket directory's key files and temp files, as far as one bounded scan got. */
export interface BucketListing {
  /** `[file name, key]` for up to `maxKeys` key files. */
  readonly keys: ReadonlyArray<readonly [string, string]>;
  /** Up to `maxKeys` temp files (left behind by writers that died mid-write). */
  readonly tempNames: readonly string[];
  /** True when the directory held more key files than `maxKeys`. */
  readonly truncated: boolean;
  /** True when the directory does not exist (someone removed it). */
  readonly missing: boolean;
}

/**
 * Lists a bucket directory, stopping after `maxKeys` key files so one huge (or hostile)
 * directory cannot make a scan unbounded. Names that are neither keys nor temp files are
 * someone else's and are left alone. A missing directory lists as empty.
 */
export async function listBucketDir(dir: string, maxKeys: number): Promise<BucketListing> {
  const keys: [string, string][] = [];
  const tempNames: string[] = [];
  let truncated = false;
  let missing = false;
  try {
    for await (const item of Deno.readDir(dir)) {
      if (!item.isFile) continue;
      if (item.name.startsWith(TEMP_PREFIX)) {
        if (tempNames.length < maxKeys) tempNames.push(item.name);
        continue;
      }
      const key = decodeKeyFromFile(item.name);
      if (key === undefined) continue;
      if (keys.length >= maxKeys) {
        truncated = true;
        break;
      }
      keys.push([item.name, key]);
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    missing = true;
  }
  return { keys, tempNames, truncated, missing };
}

/**
 * Writes `bytes` to `dir/name` atomically: readers see the old file or the new one, never a
 * torn one, because rename within a directory is atomic (on NFS too). No fsync: an entry
 * lost to a power cut is re-registered or expires, which is what discovery needs anyway.
 */
export async function writeFileAtomic(dir: string, name: string, bytes: Uint8Array): Promise<void> {
  const tempPath = join(dir, `${TEMP_PREFIX}${randomHex16()}`);
  try {
    await Deno.writeFile(tempPath, bytes, { createNew: true, mode: 0o644 });
    await Deno.rename(tempPath, join(dir, name));
  } catch (err) {
    await removeIfPresent(tempPath).catch(() => {});
    throw err;
  }
}

/**
 * Removes a file; a file that is already gone is fine (another process swept it first).
 * Returns whether this call removed it.
 */
export async function removeIfPresent(path: string): Promise<boolean> {
  try {
    await Deno.remove(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

/** Stats a path; undefined when it is gone. */
export async function statIfPresent(path: string): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.stat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

/**
 * Runs `fn` over `items` with at most `limit` in flight. If one call fails, no new calls
 * start, the ones in flight finish (nothing is left running behind the caller), and the
 * first error is thrown.
 */
export async function forEachLimit<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (failure === undefined && next < items.length) {
      try {
        await fn(items[next++]!);
      } catch (error) {
        failure ??= { error };
      }
    }
  });
  await Promise.all(lanes);
  if (failure !== undefined) throw failure.error;
}

function randomHex16(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
