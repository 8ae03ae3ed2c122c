import assert from "node:assert/strict";
import { DynamoError } from "../errors/mod.ts";
import { setLogLevel } from "../observability/mod.ts";
import type { RouterEvent } from "../protocol/mod.ts";
import { RequestPlaneClient, RequestPlaneServer } from "../transport/mod.ts";
import {
  KV_DUMP_ENDPOINT,
  KV_EVENTS_ENDPOINT,
  registerKvEventEndpoints,
} from "./kv_event_endpoints.ts";
import { KvEventRelay } from "./kv_event_relay.ts";

setLogLevel("off");

async function collect(iterable: AsyncIterable<unknown>): Promise<unknown[]> {
  const items: unknown[] = [];
  for await (const item of iterable) items.push(item);
  return items;
}

Deno.test("kv_events and kv_dump serve a relay's ring and view over the request plane", async () => {
  const server = await RequestPlaneServer.listen({ host: "127.0.0.1", port: 0 });
  const client = new RequestPlaneClient();
  const relay = new KvEventRelay({ workerId: 42, publish: () => {}, ringCapacity: 3 });
  registerKvEventEndpoints(server, relay);
  const target = { host: "127.0.0.1", port: server.port };
  const big = (1n << 64n) - 5n; // survives msgpack as a u64
  try {
    assert.deepEqual(await collect(client.call(target, KV_DUMP_ENDPOINT, {})), [
      { last_event_id: 0 },
    ]);
    relay.relay({
      data: { stored: { parent_hash: null, blocks: [{ block_hash: big, tokens_hash: 9n }] } },
      dp_rank: 0,
    });
    relay.relay({
      data: { stored: { parent_hash: big, blocks: [{ block_hash: 2n, tokens_hash: 8n }] } },
      dp_rank: 0,
    });
    relay.relay({ data: { removed: { block_hashes: [2n] } }, dp_rank: 0 });
    relay.relay({ data: { removed: { block_hashes: [77n] } }, dp_rank: 0 });

    const range = (await collect(
      client.call(target, KV_EVENTS_ENDPOINT, { start_id: 2, end_id: 10 }),
    )) as RouterEvent[];
    assert.deepEqual(range.map((e) => [e.worker_id, e.event.event_id]), [[42, 2], [42, 3], [
      42,
      4,
    ]]);
    assert.deepEqual(range[0]!.event.data, {
      stored: { parent_hash: big, blocks: [{ block_hash: 2n, tokens_hash: 8n }] },
    });

    await assert.rejects(
      collect(client.call(target, KV_EVENTS_ENDPOINT, { start_id: 1, end_id: 4 })),
      (err: unknown) =>
        err instanceof DynamoError && err.errorClass === "not_found" &&
        err.reason === "events_evicted",
    );
    await assert.rejects(
      collect(client.call(target, KV_EVENTS_ENDPOINT, { start_id: "x" })),
      (err: unknown) => err instanceof DynamoError && err.errorClass === "invalid_request",
    );

    const dump = await collect(client.call(target, KV_DUMP_ENDPOINT, {}));
    assert.deepEqual(dump, [
      { last_event_id: 4 },
      {
        worker_id: 42,
        event: {
          event_id: 4,
          data: { stored: { parent_hash: null, blocks: [{ block_hash: big, tokens_hash: 9n }] } },
          dp_rank: 0,
        },
      },
    ]);
  } finally {
    await client.close();
    await server.close();
  }
});
