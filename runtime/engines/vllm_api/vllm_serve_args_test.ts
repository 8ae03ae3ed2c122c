import assert from "node:assert/strict";
import { DynamoError } from "../../errors/mod.ts";
import { parseVllmServeArgs } from "./vllm_serve_args.ts";

Deno.test("parseVllmServeArgs() reads vllm serve's command line and ignores flags it does not model", () => {
  const args = parseVllmServeArgs([
    "serve",
    "/models/qwen",
    "--host",
    "127.0.0.1",
    "--port=9000",
    "--served-model-name",
    "a",
    "b",
    "--enforce-eager",
    "--dtype",
    "bfloat16",
    "--no-enable-chunked-prefill",
    "--block-size",
    "32",
    "--kv-events-config",
    '{"enable_kv_cache_events":true,"endpoint":"tcp://*:7000","topic":"kv-events"}',
    "--enable-prompt-tokens-details",
  ]);
  assert.equal(args.model, "/models/qwen");
  assert.equal(args.host, "127.0.0.1");
  assert.equal(args.port, 9000);
  assert.deepEqual(args.servedModelNames, ["a", "b"]);
  assert.equal(args.blockSize, 32);
  assert.equal(args.enableChunkedPrefill, false);
  assert.equal(args.enablePrefixCaching, true);
  assert.equal(args.enablePromptTokensDetails, true);
  assert.deepEqual(args.kvEventsConfig, {
    enable_kv_cache_events: true,
    publisher: "zmq",
    endpoint: "tcp://*:7000",
    replay_endpoint: null,
    buffer_steps: 10_000,
    hwm: 100_000,
    topic: "kv-events",
  });
  assert.deepEqual(args.ignored, ["--enforce-eager", "--dtype bfloat16"]);
  const defaults = parseVllmServeArgs(["serve", "m"]);
  assert.deepEqual(
    [defaults.port, defaults.blockSize, defaults.servedModelNames, defaults.kvEventsConfig],
    [8000, 16, ["m"], undefined],
  );
});

Deno.test("parseVllmServeArgs() refuses what vllm serve would refuse", () => {
  for (
    const argv of [["run", "m"], ["serve"], ["serve", "m", "--port", "x"], ["serve", "m", "--port"]]
  ) {
    assert.throws(() => parseVllmServeArgs(argv), DynamoError, argv.join(" "));
  }
});
