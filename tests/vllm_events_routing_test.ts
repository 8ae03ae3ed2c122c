/**
 * A vLLM-format KV event stream on a ZMQ socket, relayed by a worker, changes where the
 * KV-aware router sends requests. The stream's bytes are written out by hand from the
 * msgpack spec and vLLM's KVEventBatch layout, not produced by the project's encoder.
 */
import assert from "node:assert/strict";
import * as zmq from "zeromq";
import { MemoryDiscovery, MemoryDiscoveryStore } from "../runtime/discovery/mod.ts";
import { MockerEngine } from "../runtime/engines/mod.ts";
import { startFrontendRole } from "../runtime/frontend/mod.ts";
import { QWEN3_TOKENIZER_DIR } from "../runtime/llm/testing.ts";
import { setLogLevel } from "../runtime/observability/mod.ts";
import { DEFAULT_KV_ROUTER_CONFIG } from "../runtime/router/mod.ts";
import { RequestPlaneClient } from "../runtime/transport/mod.ts";
import { systemClock } from "../runtime/util/mod.ts";
import { type WorkerConfig, WorkerRoleHandle } from "../runtime/worker/mod.ts";
import { MODEL } from "./_harness.ts";

setLogLevel("error");

function hex(listing: string): Uint8Array {
  const digits = listing.replace(/\/\/.*$/gm, "").replace(/\s+/g, "");
  return new Uint8Array(digits.match(/../g)!.map((b) => parseInt(b, 16)));
}

// [1.5, [["AllBlocksCleared"]], 0]
const CLEARED = hex(`93 cb 3f f8 00 00 00 00 00 00  91 91 b0 416c6c426c6f636b73436c6561726564  00`);

// [1.5, [["BlockStored", [0x1111, 0x2222], nil, [1,2,3,4,5,6,7,8], 4, nil, "GPU",
//         nil, nil, nil, nil, nil]], 0]
const STORED = hex(`
  93 cb 3f f8 00 00 00 00 00 00        // [1.5,
  91 9c                                //  [[ (12 fields)
  ab 426c6f636b53746f726564            //   "BlockStored",
  92 cd 11 11 cd 22 22                 //   [0x1111, 0x2222] (u16),
  c0                                   //   parent: nil,
  98 01 02 03 04 05 06 07 08           //   token_ids,
  04                                   //   block_size 4,
  c0 a3 475055 c0 c0 c0 c0 c0          //   lora_id nil, "GPU", nil x5 ]],
  00                                   //  dp_rank 0]
`);

// [1.5, [["BlockRemoved", [0x1111, 0x2222], "GPU"]], 0]
const REMOVED = hex(`
  93 cb 3f f8 00 00 00 00 00 00  91 93 ac 426c6f636b52656d6f766564
  92 cd 11 11 cd 22 22  a3 475055  00
`);

Deno.test({
  name: "Hand-built vLLM KV events relayed by a worker steer KV-aware routing",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const raw = new zmq.Publisher({ linger: 0, sendTimeout: 0 });
    await raw.bind("tcp://127.0.0.1:*");
    let seq = 0;
    const send = (payload: Uint8Array) => {
      const frame = new Uint8Array(8);
      new DataView(frame.buffer).setBigUint64(0, BigInt(seq++));
      return raw.send([new Uint8Array(0), frame, payload]);
    };
    const store = new MemoryDiscoveryStore();
    const vocabulary = { wordTokenIds: [[1000], [1001]], eosTokenIds: [151645] };
    const config: WorkerConfig = {
      namespace: "vllm-test",
      component: "backend",
      endpoint: "generate",
      modelName: MODEL,
      modelPath: QWEN3_TOKENIZER_DIR,
      tokenizerDir: QWEN3_TOKENIZER_DIR,
      role: "agg",
      host: "127.0.0.1",
      advertiseHost: "127.0.0.1",
      maxFrameBytes: 1 << 20,
      port: 0,
      loadIntervalMs: 100,
      drainTimeoutMs: 1_000,
    };
    const engine = () =>
      new MockerEngine({ options: { blockSizeTokens: 4, speedupRatio: 100 }, vocabulary });
    const plain = await WorkerRoleHandle.start(
      {
        discovery: new MemoryDiscovery(store),
        engine: engine(),
        clock: systemClock,
        eosTokenIds: [151645],
      },
      config,
    );
    // This worker's KV events come from the hand-built stream, as they would from a vLLM.
    const fed = await WorkerRoleHandle.start(
      {
        discovery: new MemoryDiscovery(store),
        engine: engine(),
        clock: systemClock,
        eosTokenIds: [151645],
      },
      { ...config, kvEvents: { endpoint: raw.lastEndpoint! } },
    );
    const client = new RequestPlaneClient();
    const frontendDiscovery = new MemoryDiscovery(store);
    const role = await startFrontendRole({
      discovery: frontendDiscovery,
      caller: client,
      clock: systemClock,
    }, {
      namespace: "vllm-test",
      routerMode: "kv",
      routerSeed: 1,
      kv: DEFAULT_KV_ROUTER_CONFIG,
      maxBodyBytes: 1 << 20,
      requestTimeoutMs: 10_000,
      followLoad: false,
    });
    const tokens = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    const routeOf = async () => {
      const res = await role.app.request("/v1/route", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: MODEL, token_ids: tokens }),
      });
      return await res.json() as {
        worker_id: number;
        candidates: { worker_id: number; overlap_blocks: number }[];
      };
    };
    const applied = async (type: string) => {
      const text = await role.metrics.registry.metrics();
      const m = new RegExp(`event_type="${type}",status="ok"\\} (\\d+)`).exec(text);
      return m === null ? 0 : Number(m[1]);
    };
    try {
      const deadline = Date.now() + 10_000;
      while (role.registry.get(MODEL)?.allWorkers().length !== 2) {
        assert.ok(Date.now() < deadline, "both workers registered");
        await new Promise((r) => setTimeout(r, 20));
      }
      // The worker's SUB and the router's event-plane SUB join asynchronously; until a
      // Cleared makes it all the way through, resend it.
      while (await applied("cleared") === 0) {
        assert.ok(Date.now() < deadline, "a relayed event reached the router");
        await send(CLEARED);
        await new Promise((r) => setTimeout(r, 20));
      }
      const before = await routeOf();
      assert.ok(before.candidates.every((c) => c.overlap_blocks === 0));

      await send(STORED);
      while (await applied("stored") === 0) await new Promise((r) => setTimeout(r, 10));
      const after = await routeOf();
      assert.equal(after.worker_id, fed.instanceId);
      assert.equal(after.candidates.find((c) => c.worker_id === fed.instanceId)!.overlap_blocks, 2);
      assert.equal(
        after.candidates.find((c) => c.worker_id === plain.instanceId)!.overlap_blocks,
        0,
      );
      const res = await role.app.request("/v1/completions", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          model: MODEL,
          prompt: tokens,
          max_tokens: 2,
          nvext: { extra_fields: ["worker_id"] },
        }),
      });
      assert.equal((await res.json()).nvext.worker_id.decode_worker_id, fed.instanceId);

      await send(REMOVED);
      while (await applied("removed") === 0) await new Promise((r) => setTimeout(r, 10));
      const removed = await routeOf();
      assert.equal(
        removed.candidates.find((c) => c.worker_id === fed.instanceId)!.overlap_blocks,
        0,
      );
    } finally {
      await role.close();
      await plain.shutdown();
      await fed.shutdown();
      await client.close();
      await frontendDiscovery.close();
      raw.close();
    }
  },
});
