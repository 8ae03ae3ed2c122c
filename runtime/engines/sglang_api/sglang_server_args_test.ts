import assert from "node:assert/strict";
import { parseSglangServerArgs } from "./sglang_server_args.ts";

Deno.test("parseSglangServerArgs() reads sglang serve and launch_server command lines, ignoring what it does not model", () => {
  const args = parseSglangServerArgs([
    "serve",
    "--model-path",
    "/models/qwen",
    "--port",
    "31000",
    "--page-size",
    "16",
    "--chunked-prefill-size",
    "-1",
    "--enable-metrics",
    "--trust-remote-code",
    "--mem-fraction-static",
    "0.8",
    "--kv-events-config",
    '{"publisher":"zmq","endpoint":"tcp://*:5557","topic":"kv"}',
  ]);
  assert.equal(args.modelPath, "/models/qwen");
  assert.equal(args.servedModelName, "/models/qwen");
  assert.equal(args.port, 31000);
  assert.equal(args.pageSize, 16);
  assert.equal(args.chunkedPrefillSize, -1);
  assert.equal(args.enableMetrics, true);
  assert.equal(args.disableRadixCache, false);
  assert.deepEqual(args.kvEventsConfig, {
    publisher: "zmq",
    endpoint: "tcp://*:5557",
    replay_endpoint: null,
    buffer_steps: 10_000,
    topic: "kv",
  });
  assert.deepEqual(args.ignored, ["--trust-remote-code", "--mem-fraction-static 0.8"]);
  const legacy = parseSglangServerArgs([
    "-m",
    "sglang.launch_server",
    "--model",
    "m",
    "--stream-output",
    "--served-model-name",
    "x",
  ]);
  assert.equal(legacy.modelPath, "m");
  assert.equal(legacy.servedModelName, "x");
  assert.equal(legacy.incrementalStreamingOutput, true);
  assert.equal(parseSglangServerArgs(["serve", "positional/model"]).modelPath, "positional/model");
  assert.throws(() => parseSglangServerArgs(["serve", "--port", "1"]), /missing --model-path/);
  assert.throws(
    () => parseSglangServerArgs(["serve", "m", "--page-size", "0"]),
    /invalid int value/,
  );
});
