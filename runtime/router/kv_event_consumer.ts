import type { DiscoveryBackend } from "../discovery/mod.ts";
import { DynamoError } from "../errors/mod.ts";
import { Logger } from "../observability/mod.ts";
import { componentSubjectPrefix, EventSubscriber, followEventChannels } from "../transport/mod.ts";
import type { RouterEvent } from "../protocol/mod.ts";
import type { KvRoutingState } from "./kv_routing_state.ts";

const log = new Logger("router.events");

/** The event-plane topic and request-plane endpoints of KV events (see runtime/kv_events). */
export const KV_EVENTS_TOPIC = "kv-events";
const QUERY_ENDPOINT = "kv_events";
const DUMP_ENDPOINT = "kv_dump";

/** The request plane as the consumer uses it (RequestPlaneClient satisfies this). */
export interface EventQueryCaller {
  call(
    target: { host: string; port: number },
    endpoint: string,
    payload: unknown,
    options?: { signal?: AbortSignal },
  ): AsyncIterable<unknown>;
}

interface WorkerStream {
  /** Last event id applied; 0 before the first. */
  lastId: number;
  /** Events received while a recovery runs, applied after it (bounded). */
  pending: RouterEvent[] | undefined;
}

export interface KvEventConsumerOptions {
  readonly namespace: string;
  /** Where a worker's request plane is, for recovery queries. */
  readonly addressOf: (instanceId: number) => { host: string; port: number } | undefined;
  /** Events buffered per worker during a recovery; past this, the recovery restarts. */
  readonly maxPendingEvents?: number;
  readonly recoveryTimeoutMs?: number;
}

/**
 * Feeds workers' KV events from the event plane into the router's index, in order per
 * worker (dynamo-facts §2.1). Event ids are consecutive from 1 per worker; a gap is
 * recovered by asking the worker for the missing range (its ring buffer) or, if that is
 * gone, for a full dump that replaces what the index holds for it. A worker that joins is
 * synchronised with a dump, so a router that starts late still sees existing caches.
 */
export class KvEventConsumer {
  readonly #state: KvRoutingState;
  readonly #caller: EventQueryCaller;
  readonly #options: KvEventConsumerOptions;
  readonly #streams = new Map<number, WorkerStream>();
  readonly #subscriber: EventSubscriber;
  readonly #controller = new AbortController();
  #following: Promise<void> | undefined;

  constructor(state: KvRoutingState, caller: EventQueryCaller, options: KvEventConsumerOptions) {
    this.#state = state;
    this.#caller = caller;
    this.#options = options;
    this.#subscriber = new EventSubscriber({
      subjectPrefixes: [componentSubjectPrefix(options.namespace, "")],
      onEvent: (envelope, event) => {
        if (envelope.topic.endsWith(`.${KV_EVENTS_TOPIC}`)) this.handle(event as RouterEvent);
      },
      onGap: (publisherId, expected, received, topic) => {
        if (topic.endsWith(`.${KV_EVENTS_TOPIC}`)) {
          log.debug("Event-plane gap; event ids will tell what is missing", {
            publisher: publisherId,
            expected,
            received,
          });
        }
      },
    });
  }

  /** Starts following publishers in discovery. */
  start(discovery: DiscoveryBackend): void {
    this.#following = followEventChannels(discovery, this.#subscriber, {
      namespace: this.#options.namespace,
      topic: KV_EVENTS_TOPIC,
      signal: this.#controller.signal,
    }).catch((err) => {
      if (!this.#controller.signal.aborted) {
        log.error("Cannot follow KV event channels", { error: err });
      }
    });
  }

  /** Keeps per-worker streams in step with discovery: new workers are synchronised. */
  syncWorkers(live: ReadonlySet<number>): void {
    for (const id of [...this.#streams.keys()]) {
      if (!live.has(id)) this.#streams.delete(id);
    }
    for (const id of live) {
      if (!this.#streams.has(id)) {
        const stream: WorkerStream = { lastId: 0, pending: [] };
        this.#streams.set(id, stream);
        void this.#recover(id, stream, "join");
      }
    }
  }

  /** Resolves once no worker is recovering (for tests and orderly shutdown). */
  async idle(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ([...this.#streams.values()].some((s) => s.pending !== undefined)) {
      if (Date.now() > deadline) throw new Error("KV event recovery did not finish in time");
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  async close(): Promise<void> {
    this.#controller.abort();
    await this.#following;
    await this.#subscriber.close();
  }

  /** Applies one worker event in order, recovering a gap first (public for in-process feeds). */
  handle(event: RouterEvent): void {
    const id = event?.worker_id;
    if (typeof id !== "number" || typeof event.event?.event_id !== "number") return;
    let stream = this.#streams.get(id);
    if (stream === undefined) {
      // Events can arrive before discovery reports the worker; start its stream now.
      stream = { lastId: 0, pending: undefined };
      this.#streams.set(id, stream);
    }
    if (stream.pending !== undefined) {
      this.#buffer(id, stream, event);
      return;
    }
    const eventId = event.event.event_id;
    if (eventId <= stream.lastId) return; // already applied (a dump covered it)
    if (eventId === stream.lastId + 1) {
      this.#state.applyEvent(event);
      stream.lastId = eventId;
      return;
    }
    stream.pending = [event];
    void this.#recover(id, stream, "gap");
  }

  #buffer(id: number, stream: WorkerStream, event: RouterEvent): void {
    const max = this.#options.maxPendingEvents ?? 100_000;
    if (stream.pending!.length >= max) {
      log.warn("Too many KV events queued during recovery; dropping them and resyncing", {
        worker: id.toString(16),
      });
      stream.pending!.length = 0;
      stream.lastId = Number.MAX_SAFE_INTEGER; // forces the dump path below
    }
    stream.pending!.push(event);
  }

  /**
   * Brings one worker's view up to date: the missing range from its ring buffer when
   * possible (a gap), else a full dump (a join, or a range that was evicted).
   */
  async #recover(id: number, stream: WorkerStream, why: "gap" | "join"): Promise<void> {
    const target = this.#options.addressOf(id);
    const signal = AbortSignal.any([
      this.#controller.signal,
      AbortSignal.timeout(this.#options.recoveryTimeoutMs ?? 10_000),
    ]);
    try {
      if (target === undefined) {
        throw new DynamoError("not_found", "unknown_worker", "Worker address unknown");
      }
      const firstPending = stream.pending?.[0]?.event.event_id;
      let recovered = false;
      if (why === "gap" && firstPending !== undefined && stream.lastId < Number.MAX_SAFE_INTEGER) {
        recovered = await this.#queryRange(
          target,
          stream.lastId + 1,
          firstPending - 1,
          stream,
          signal,
        );
        if (recovered) this.#state.metrics.eventGaps.inc({ recovery: "range" });
      }
      if (!recovered) {
        await this.#dump(id, target, stream, signal);
        if (why === "gap") this.#state.metrics.eventGaps.inc({ recovery: "dump" });
      }
    } catch (err) {
      if (this.#controller.signal.aborted || !this.#streams.has(id)) return;
      log.warn("Cannot recover a worker's KV events; its cache view may be stale", {
        worker: id.toString(16),
        reason: why,
        error: err instanceof Error ? err.message : String(err),
      });
      if (stream.lastId === Number.MAX_SAFE_INTEGER) stream.lastId = 0;
    }
    this.#drain(stream);
  }

  async #queryRange(
    target: { host: string; port: number },
    startId: number,
    endId: number,
    stream: WorkerStream,
    signal: AbortSignal,
  ): Promise<boolean> {
    const events: RouterEvent[] = [];
    try {
      for await (
        const item of this.#caller.call(target, QUERY_ENDPOINT, {
          start_id: startId,
          end_id: endId,
        }, { signal })
      ) {
        events.push(item as RouterEvent);
      }
    } catch (err) {
      if (err instanceof DynamoError && err.reason === "events_evicted") return false;
      throw err;
    }
    for (const e of events) {
      if (e.event.event_id !== stream.lastId + 1) return false;
      this.#state.applyEvent(e);
      stream.lastId = e.event.event_id;
    }
    return stream.lastId === endId;
  }

  async #dump(
    id: number,
    target: { host: string; port: number },
    stream: WorkerStream,
    signal: AbortSignal,
  ): Promise<void> {
    const items: unknown[] = [];
    for await (const item of this.#caller.call(target, DUMP_ENDPOINT, {}, { signal })) {
      items.push(item);
    }
    const header = items.shift() as { last_event_id?: number } | undefined;
    if (typeof header?.last_event_id !== "number") {
      throw new DynamoError("engine_error", "bad_dump", "Worker's KV dump has no header");
    }
    this.#state.clearWorker(id);
    for (const e of items) this.#state.applyEvent(e as RouterEvent);
    stream.lastId = header.last_event_id;
  }

  /** Applies events that arrived during a recovery; a new gap among them recovers again. */
  #drain(stream: WorkerStream): void {
    const pending = stream.pending ?? [];
    stream.pending = undefined;
    for (const e of pending) this.handle(e);
  }
}
