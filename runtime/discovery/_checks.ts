import { DynamoError } from "../errors/mod.ts";
import {
  type Bucket,
  BUCKETS,
  type DiscoveryInstance,
  DiscoveryInstanceSchema,
} from "../protocol/mod.ts";
import { encodeKeyForFile, MAX_FILE_NAME_BYTES } from "./key_encoding.ts";

/** The largest value one entry may hold. A model card is a few KiB; this leaves ample room. */
export const MAX_VALUE_BYTES = 1024 * 1024;

/** Most concurrent watchers one backend serves; each costs a watch handle and a timer. */
export const MAX_WATCHERS_PER_BACKEND = 64;

/** An entry as both backends keep it: the exact JSON text and the validated value. */
export interface StoredEntry {
  readonly key: string;
  readonly text: string;
  readonly value: DiscoveryInstance;
}

const utf8 = new TextEncoder();
const BUCKET_NAMES: ReadonlySet<string> = new Set(Object.values(BUCKETS));

/** Rejects a bucket outside BUCKETS, so an untyped caller cannot aim a path elsewhere. */
export function checkBucket(bucket: Bucket): void {
  if (!BUCKET_NAMES.has(bucket)) {
    throw new DynamoError(
      "invalid_request",
      "unknown_bucket",
      `Cannot use discovery bucket ${JSON.stringify(bucket)}: expected one of ${
        [...BUCKET_NAMES].join(", ")
      }`,
    );
  }
}

/** Validates a key and returns its file name (both backends apply the file limit, so they agree). */
export function checkKey(key: string): string {
  if (key.length === 0) {
    throw new DynamoError("invalid_request", "empty_key", "Cannot use an empty discovery key");
  }
  if (!key.isWellFormed()) {
    // A lone surrogate has no UTF-8 form, so the file name could not give the key back.
    throw new DynamoError(
      "invalid_request",
      "invalid_key",
      `Cannot use discovery key ${JSON.stringify(key)}: it is not well-formed Unicode`,
    );
  }
  const name = encodeKeyForFile(key);
  if (name.length > MAX_FILE_NAME_BYTES) {
    throw new DynamoError(
      "invalid_request",
      "key_too_long",
      `Cannot use discovery key ${
        JSON.stringify(key.slice(0, 64))
      }…: its file name would be ${name.length} bytes, over the ${MAX_FILE_NAME_BYTES} byte limit`,
    );
  }
  return name;
}

/** Validates a value and serialises it the way it is stored. */
export function encodeValue(key: string, value: DiscoveryInstance): StoredEntry {
  const parsed = DiscoveryInstanceSchema.safeParse(value);
  if (!parsed.success) {
    throw new DynamoError(
      "invalid_request",
      "invalid_instance",
      `Cannot register ${
        JSON.stringify(key)
      }: value is not a DiscoveryInstance: ${parsed.error.message}`,
    );
  }
  const text = JSON.stringify(value);
  const sizeBytes = utf8.encode(text).length;
  if (sizeBytes > MAX_VALUE_BYTES) {
    throw new DynamoError(
      "invalid_request",
      "value_too_large",
      `Cannot register ${
        JSON.stringify(key)
      }: value is ${sizeBytes} bytes, over the ${MAX_VALUE_BYTES} byte limit`,
    );
  }
  return { key, text, value: parsed.data };
}

/**
 * Parses stored text into an entry, or returns why it is not one. Never throws: a bad file
 * written by someone else must not take down a watcher.
 */
export function decodeValue(key: string, text: string): StoredEntry | string {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return `not JSON: ${err instanceof Error ? err.message : String(err)}`;
  }
  const parsed = DiscoveryInstanceSchema.safeParse(json);
  if (!parsed.success) return `not a DiscoveryInstance: ${parsed.error.issues[0]?.message ?? ""}`;
  return { key, text, value: parsed.data };
}

/** The error every backend throws once closed. */
export function closedError(what: string): DynamoError {
  return new DynamoError("unavailable", "discovery_closed", `Cannot ${what}: discovery is closed`);
}

/**
 * Classifies a file-system failure (EACCES, EIO, a hung NFS mount…) as `unavailable`: the
 * shared directory is the dependency that failed, and a retry may succeed.
 */
export function ioError(what: string, err: unknown): DynamoError {
  if (err instanceof DynamoError) return err;
  const detail = err instanceof Error ? err.message : String(err);
  return new DynamoError("unavailable", "discovery_io", `Cannot ${what}: ${detail}`, {
    cause: err,
  });
}
