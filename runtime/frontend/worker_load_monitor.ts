import type { DiscoveryBackend } from "../discovery/mod.ts";
import { Logger } from "../observability/mod.ts";
import type { WorkerLoad } from "../protocol/mod.ts";
import { EventSubscriber, followEventChannels, namespaceSubject } from "../transport/mod.ts";
import type { FrontendMetrics } from "./metrics.ts";

const log = new Logger("frontend.load");

/** The event-plane topic workers publish their load on (Dynamo's `kv_metrics`). */
export const LOAD_TOPIC = "kv_metrics";

/**
 * Follows the workers' load reports on the event plane and exports them as per-worker
 * gauges. Reports from workers that left discovery are dropped, so the map stays bounded
 * by the number of live workers.
 */
export class WorkerLoadMonitor {
  readonly #metrics: FrontendMetrics;
  readonly #loads = new Map<number, WorkerLoad>();
  readonly #subscriber: EventSubscriber;
  readonly #controller = new AbortController();
  readonly #maxWorkers: number;

  private constructor(metrics: FrontendMetrics, namespace: string, maxWorkers: number) {
    this.#metrics = metrics;
    this.#maxWorkers = maxWorkers;
    this.#subscriber = new EventSubscriber({
      subjectPrefixes: [namespaceSubject(namespace, LOAD_TOPIC)],
      onEvent: (_envelope, event) => this.#onLoad(event as WorkerLoad),
    });
  }

  static start(
    discovery: DiscoveryBackend,
    metrics: FrontendMetrics,
    options: { namespace: string; maxWorkers?: number },
  ): WorkerLoadMonitor {
    const monitor = new WorkerLoadMonitor(metrics, options.namespace, options.maxWorkers ?? 4096);
    const signal = monitor.#controller.signal;
    followEventChannels(discovery, monitor.#subscriber, {
      namespace: options.namespace,
      topic: LOAD_TOPIC,
      signal,
    }).catch((err) => {
      if (!signal.aborted) log.error("Cannot follow load reports", { error: err });
    });
    return monitor;
  }

  /** The latest load report of a worker. */
  get(instanceId: number): WorkerLoad | undefined {
    return this.#loads.get(instanceId);
  }

  /** Forgets workers not in `live` (called when discovery changes). */
  retain(live: ReadonlySet<number>): void {
    for (const id of [...this.#loads.keys()]) {
      if (live.has(id)) continue;
      const load = this.#loads.get(id)!;
      this.#loads.delete(id);
      const labels = labelsOf(load);
      for (const g of this.#gauges()) g.remove(labels);
    }
  }

  async close(): Promise<void> {
    this.#controller.abort();
    await this.#subscriber.close();
  }

  #onLoad(load: WorkerLoad): void {
    if (typeof load?.worker_id !== "number") return;
    if (!this.#loads.has(load.worker_id) && this.#loads.size >= this.#maxWorkers) return;
    this.#loads.set(load.worker_id, load);
    const labels = labelsOf(load);
    const m = this.#metrics;
    m.workerActiveDecodeBlocks.set(labels, load.active_decode_blocks);
    m.workerActivePrefillTokens.set(labels, load.active_prefill_tokens);
    m.workerKvUsedBlocks.set(labels, load.kv_used_blocks);
    m.workerKvTotalBlocks.set(labels, load.kv_total_blocks);
    m.workerRequestsRunning.set(labels, load.num_requests_running);
    m.workerRequestsWaiting.set(labels, load.num_requests_waiting);
  }

  #gauges() {
    const m = this.#metrics;
    return [
      m.workerActiveDecodeBlocks,
      m.workerActivePrefillTokens,
      m.workerKvUsedBlocks,
      m.workerKvTotalBlocks,
      m.workerRequestsRunning,
      m.workerRequestsWaiting,
    ];
  }
}

function labelsOf(load: WorkerLoad): Record<string, string> {
  return {
    worker_id: String(load.worker_id),
    dp_rank: String(load.dp_rank),
    worker_type: "decode",
  };
}
