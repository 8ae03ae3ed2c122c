import {
  type ApplyStatus,
  ApproxPruner,
  DEFAULT_MAX_TREE_SIZE_BLOCKS,
  KvIndex,
  type WorkerKey,
} from "../kv_index/mod.ts";
import type { KvCacheEventData, RouterEvent } from "../protocol/mod.ts";
import { ActiveSequences } from "./active_sequences.ts";
import type { KvRouterConfig } from "./kv_router_config.ts";
import type { RouterMetrics } from "./router_metrics.ts";

/** Dense index keys for worker instance ids (dp rank 0), reused after a worker leaves. */
class WorkerKeys {
  readonly #byInstance = new Map<number, WorkerKey>();
  readonly #byKey = new Map<WorkerKey, number>();
  readonly #free: WorkerKey[] = [];
  #next = 0;

  keyOf(instanceId: number): WorkerKey {
    let key = this.#byInstance.get(instanceId);
    if (key === undefined) {
      key = this.#free.pop() ?? this.#next++;
      this.#byInstance.set(instanceId, key);
      this.#byKey.set(key, instanceId);
    }
    return key;
  }

  peek(instanceId: number): WorkerKey | undefined {
    return this.#byInstance.get(instanceId);
  }

  instanceOf(key: WorkerKey): number | undefined {
    return this.#byKey.get(key);
  }

  release(instanceId: number): WorkerKey | undefined {
    const key = this.#byInstance.get(instanceId);
    if (key === undefined) return undefined;
    this.#byInstance.delete(instanceId);
    this.#byKey.delete(key);
    this.#free.push(key);
    return key;
  }
}

function eventType(data: KvCacheEventData): "stored" | "removed" | "cleared" {
  if (data === "cleared") return "cleared";
  return "stored" in data ? "stored" : "removed";
}

/**
 * Everything the KV-aware router knows, shared by the selectors of every model a frontend
 * (or a standalone router) serves: the radix index of cached blocks, the booked load, and
 * in approximate mode the pruner that ages out its guesses.
 */
export class KvRoutingState {
  readonly config: KvRouterConfig;
  readonly index: KvIndex;
  readonly sequences = new ActiveSequences();
  readonly pruner: ApproxPruner | undefined;
  readonly metrics: RouterMetrics;
  readonly #keys = new WorkerKeys();
  readonly #releaseListeners = new Set<() => void>();

  constructor(config: KvRouterConfig, metrics: RouterMetrics) {
    this.config = config;
    this.metrics = metrics;
    // --router-max-tree-size bounds the approximate mode's guesses (pruned to 80% of it).
    // With events the index mirrors the engines' caches; it keeps a larger hard bound so a
    // runaway event stream cannot exhaust memory.
    this.index = new KvIndex({
      maxTreeSizeBlocks: Math.max(DEFAULT_MAX_TREE_SIZE_BLOCKS, 2 * config.maxTreeSizeBlocks),
    });
    this.pruner = config.useKvEvents ? undefined : new ApproxPruner(this.index, {
      ttlMs: config.ttlMs,
      maxTreeSizeBlocks: config.maxTreeSizeBlocks,
      pruneTargetRatio: config.pruneTargetRatio,
    });
  }

  keyOf(instanceId: number): WorkerKey {
    return this.#keys.keyOf(instanceId);
  }

  instanceOf(key: WorkerKey): number | undefined {
    return this.#keys.instanceOf(key);
  }

  /** Applies one worker KV event to the index and counts it. */
  applyEvent(event: RouterEvent): ApplyStatus {
    const status = this.index.applyEvent(this.keyOf(event.worker_id), event.event.data);
    this.metrics.eventsApplied.inc({ event_type: eventType(event.event.data), status });
    this.metrics.indexBlocks.set({ router_id: this.metrics.routerId }, this.index.sizeBlocks);
    return status;
  }

  /** Drops a worker's cached blocks (before a full dump is replayed). */
  clearWorker(instanceId: number): void {
    const key = this.#keys.peek(instanceId);
    if (key !== undefined) this.index.applyCleared(key);
  }

  /** Forgets a worker that left discovery. */
  removeWorker(instanceId: number): void {
    const key = this.#keys.release(instanceId);
    if (key === undefined) return;
    this.index.removeWorker(key);
    this.sequences.removeWorker(key);
    this.pruner?.removeWorker(key);
    this.metrics.indexBlocks.set({ router_id: this.metrics.routerId }, this.index.sizeBlocks);
    this.notifyRelease();
  }

  /** Registers a callback for "load was released" (the admission queue drains on it). */
  onRelease(listener: () => void): () => void {
    this.#releaseListeners.add(listener);
    return () => this.#releaseListeners.delete(listener);
  }

  notifyRelease(): void {
    for (const l of this.#releaseListeners) l();
  }
}
