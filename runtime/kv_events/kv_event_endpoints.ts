/**
 * The worker's two request-plane endpoints for KV-event gap recovery (Dynamo's
 * `worker_kv_indexer_query` endpoint, split in two). Items travel as msgpack with field
 * names; hashes are u64 as msgpack 64-bit integers (bigint in TypeScript).
 *
 * `kv_events`: payload `{ start_id: number, end_id: number }` (inclusive, 1 <= start_id <=
 * end_id). Streams one `RouterEvent` (`{ worker_id, event: { event_id, data, dp_rank } }`,
 * exactly as published on the event plane) per id in `[start_id, min(end_id,
 * last_event_id)]`, oldest first; nothing when start_id is past the last event. Fails
 * before any item with `not_found` / `events_evicted` when part of the range has left the
 * worker's ring buffer (ask `kv_dump` then), `invalid_request` / `invalid_event_range` for a
 * bad payload.
 *
 * `kv_dump`: payload ignored (send `{}`). Streams first a header `{ last_event_id: number }`
 * (0 when nothing was ever published), then `RouterEvent`s whose `data` are all Stored,
 * parents before children, each with `event.event_id === last_event_id`. To resync: clear
 * the worker in the index, apply every dump event in order (without gap checks: their ids
 * repeat), then continue with live events whose id is > last_event_id, which the router
 * should buffer from before it sends the request.
 * @module
 */
import { DynamoError } from "../errors/mod.ts";
import type { RouterEvent } from "../protocol/mod.ts";
import type { StreamHandler } from "../transport/mod.ts";
import type { KvEventRelay } from "./kv_event_relay.ts";

/** Endpoint name of the range query. */
export const KV_EVENTS_ENDPOINT = "kv_events";
/** Endpoint name of the full dump. */
export const KV_DUMP_ENDPOINT = "kv_dump";

/** Payload of `kv_events`. */
export interface KvEventsRequest {
  readonly start_id: number;
  readonly end_id: number;
}

/** First item of a `kv_dump` stream. */
export interface KvDumpHeader {
  readonly last_event_id: number;
}

/** Serves `kv_events` from `relay`'s ring buffer. */
export function kvEventsHandler(relay: KvEventRelay): StreamHandler {
  return async function* (payload: unknown): AsyncGenerator<RouterEvent> {
    const { start_id, end_id } = parseRange(payload);
    const events = relay.query(start_id, end_id);
    if (events === undefined) {
      throw new DynamoError(
        "not_found",
        "events_evicted",
        `Cannot return KV events ${start_id}..${end_id}: the oldest still buffered is ${relay.oldestBufferedId}`,
      );
    }
    for (const event of events) yield { worker_id: relay.workerId, event };
  };
}

/** Serves `kv_dump`: the header, then the dump's events. */
export function kvDumpHandler(relay: KvEventRelay): StreamHandler {
  return async function* (): AsyncGenerator<KvDumpHeader | RouterEvent> {
    // Taken at once, so the header and the events describe the same instant.
    const dump = relay.dump();
    yield { last_event_id: dump.lastEventId };
    for (const event of dump.events) yield { worker_id: relay.workerId, event };
  };
}

/** Registers `kv_events` and `kv_dump` on a worker's request-plane server. */
export function registerKvEventEndpoints(
  server: { register(endpoint: string, handler: StreamHandler): void },
  relay: KvEventRelay,
): void {
  server.register(KV_EVENTS_ENDPOINT, kvEventsHandler(relay));
  server.register(KV_DUMP_ENDPOINT, kvDumpHandler(relay));
}

function parseRange(payload: unknown): KvEventsRequest {
  const p = (payload ?? {}) as Record<string, unknown>;
  const start = eventId(p["start_id"]);
  const end = eventId(p["end_id"]);
  if (typeof payload !== "object" || start === undefined || end === undefined || start > end) {
    throw new DynamoError(
      "invalid_request",
      "invalid_event_range",
      `Cannot query KV events: expected {start_id, end_id} with 1 <= start_id <= end_id, got ${
        String(JSON.stringify(payload, (_, v) => typeof v === "bigint" ? v.toString() : v))
          .slice(0, 200)
      }`,
    );
  }
  return { start_id: start, end_id: end };
}

/** An event id from the wire: a positive safe integer, as a number or a 64-bit bigint. */
function eventId(raw: unknown): number | undefined {
  const n = typeof raw === "bigint" && raw <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(raw) : raw;
  return typeof n === "number" && Number.isSafeInteger(n) && n >= 1 ? n : undefined;
}
