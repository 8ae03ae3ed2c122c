import assert from "node:assert/strict";
import { DynamoError } from "../../errors/mod.ts";
import { checkVllmExtraArgs, vllmBatchLimits, vllmCommand, vllmFlagValue } from "./vllm_command.ts";

const PORTS = { http: 9000, kv_events: 9001, kv_replay: 9002, nixl_side_channel: 9003 };

Deno.test("vllmCommand() builds `vllm serve` with the worker's flags, then its mapped flags, then the extra args", () => {
  const spec = vllmCommand({
    executable: "/opt/vllm/bin/vllm",
    model: "/models/qwen",
    servedModelName: "Qwen/Qwen3-0.6B",
    blockSizeTokens: 32,
    enablePrefixCaching: true,
    engineFlags: ["--max-model-len", "4096"],
    extraArgs: ["--tensor-parallel-size", "2"],
  }, PORTS);
  assert.deepEqual(spec.argv, [
    "/opt/vllm/bin/vllm",
    "serve",
    "/models/qwen",
    "--host",
    "127.0.0.1",
    "--port",
    "9000",
    "--served-model-name",
    "Qwen/Qwen3-0.6B",
    "--block-size",
    "32",
    "--enable-prompt-tokens-details",
    "--enable-prefix-caching",
    "--kv-events-config",
    '{"enable_kv_cache_events":true,"publisher":"zmq","endpoint":"tcp://*:9001","replay_endpoint":"tcp://*:9002","topic":"kv-events"}',
    "--max-model-len",
    "4096",
    "--tensor-parallel-size",
    "2",
  ]);
  assert.deepEqual(spec.env, { VLLM_NIXL_SIDE_CHANNEL_PORT: "9003", PYTHONUNBUFFERED: "1" });
  const off = vllmCommand({
    executable: "vllm",
    model: "m",
    servedModelName: "m",
    blockSizeTokens: 16,
    enablePrefixCaching: false,
    engineFlags: [],
    extraArgs: [],
  }, PORTS);
  assert.ok(off.argv.includes("--no-enable-prefix-caching"));
  assert.ok(!off.argv.includes("--kv-events-config"));
});

Deno.test("checkVllmExtraArgs() refuses flags the worker sets itself, in both forms", () => {
  checkVllmExtraArgs(["--gpu-memory-utilization", "0.8", "--enforce-eager"]);
  for (
    const args of [["--port", "1"], ["--port=1"], ["--kv-events-config={}"], [
      "--disable-log-stats",
    ]]
  ) {
    assert.throws(
      () => checkVllmExtraArgs(args),
      (err: unknown) => err instanceof DynamoError && err.errorClass === "invalid_request",
    );
  }
});

Deno.test("vllmFlagValue() and vllmBatchLimits() read the last occurrence, else vLLM's defaults", () => {
  const args = ["--max-num-seqs", "8", "--x", "--max-num-seqs=12"];
  assert.equal(vllmFlagValue(args, "--max-num-seqs"), "12");
  assert.equal(vllmFlagValue(args, "--nope"), undefined);
  assert.deepEqual(vllmBatchLimits(args), { maxNumSeqs: 12, maxNumBatchedTokens: 8192 });
  assert.deepEqual(vllmBatchLimits([]), { maxNumSeqs: 1024, maxNumBatchedTokens: 8192 });
  assert.throws(() => vllmBatchLimits(["--max-num-batched-tokens", "lots"]), /lots/);
});
