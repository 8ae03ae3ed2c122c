/**
 * Discovery: how roles find each other. Owns the DiscoveryBackend interface, the file
 * backend (a shared directory laid out exactly as Dynamo's file store, NFS-friendly), an
 * in-memory backend for unit tests, and the conformance suite both pass. Does not own what
 * the records mean (protocol/) or what roles do when entries come and go (frontend/, router/).
 * @module
 */
export type { DiscoveryBackend, DiscoveryEvent } from "./discovery.ts";
export {
  DEFAULT_TTL_MS,
  defaultDiscoveryDir,
  FileDiscovery,
  type FileDiscoveryOptions,
  MIN_TTL_MS,
} from "./file_discovery.ts";
export {
  MemoryDiscovery,
  MemoryDiscoveryStore,
  type MemoryDiscoveryStoreOptions,
} from "./memory_discovery.ts";
export { decodeKeyFromFile, encodeKeyForFile, MAX_FILE_NAME_BYTES } from "./key_encoding.ts";
