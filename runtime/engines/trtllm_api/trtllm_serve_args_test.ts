import assert from "node:assert/strict";
import { DynamoError } from "../../errors/mod.ts";
import { parseTrtllmCompletion } from "./trtllm_completion_request.ts";
import { parseTrtllmServeArgs } from "./trtllm_serve_args.ts";

Deno.test("parseTrtllmServeArgs() reads the command line, and the options file over it", async () => {
  const file = await Deno.makeTempFile({ suffix: ".yaml" });
  await Deno.writeTextFile(
    file,
    [
      "max_batch_size: 16",
      "enable_iter_perf_stats: true",
      "kv_cache_config:",
      "  tokens_per_block: 16",
      "  max_tokens: 3200",
      "  kv_events_config: {enable_kv_cache_events: true, endpoint: 'tcp://*:5599', topic: kv}",
      "speculative_config: {decoding_type: MTP}",
    ].join("\n"),
  );
  try {
    const args = await parseTrtllmServeArgs([
      "serve",
      "/models/qwen",
      "--port",
      "9000",
      "--max_batch_size",
      "64",
      "--trust_remote_code",
      "--max_seq_len=4096",
      "--config",
      file,
      "--tp_size",
      "2",
    ]);
    assert.equal(args.model, "/models/qwen");
    assert.equal(args.host, "localhost");
    assert.equal(args.port, 9000);
    assert.equal(args.maxBatchSize, 16, "the file wins");
    assert.equal(args.maxSeqLen, 4096);
    assert.equal(args.tokensPerBlock, 16);
    assert.equal(args.kvCacheMaxTokens, 3200);
    assert.equal(args.enableBlockReuse, true);
    assert.equal(args.enableChunkedPrefill, false);
    assert.deepEqual(args.kvEvents, { endpoint: "tcp://*:5599", topic: "kv" });
    assert.deepEqual(args.ignored, ["--trust_remote_code", "--tp_size 2"]);
  } finally {
    await Deno.remove(file);
  }
  await assert.rejects(parseTrtllmServeArgs(["--port", "1"]), /Missing argument 'MODEL'/);
  await assert.rejects(parseTrtllmServeArgs(["m", "--port", "x"]), /invalid int value/);
});

Deno.test("parseTrtllmCompletion() refuses fields its strict model does not declare, and over-long requests", () => {
  const ctx = {
    modelName: "m",
    maxSeqLen: 10,
    eosTokenIds: [0],
    encode: () => [1, 2],
    requestId: "cmpl-1",
  };
  const ok = parseTrtllmCompletion(
    {
      model: "m",
      prompt: [1, 2, 3],
      max_tokens: 4,
      stream: true,
      detokenize: false,
      stream_options: {},
    },
    ctx,
  );
  assert.equal(ok.includeUsage, true, "include_usage defaults to true in stream_options");
  assert.equal(ok.detokenize, false);
  assert.equal(ok.engineRequest.stop_conditions.max_tokens, 4);
  assert.equal(
    parseTrtllmCompletion({ model: "m", prompt: "hi" }, ctx).engineRequest.stop_conditions
      .max_tokens,
    8,
    "max_tokens defaults to what max_seq_len leaves",
  );
  const refused = (body: unknown, re: RegExp) =>
    assert.throws(
      () => parseTrtllmCompletion(body, ctx),
      (err: unknown) =>
        err instanceof DynamoError && err.errorClass === "invalid_request" && re.test(err.message),
    );
  refused({ model: "m", prompt: [1], return_token_ids: true }, /Extra inputs are not permitted/);
  refused(
    { model: "m", prompt: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] },
    /must be smaller than max_seq_len/,
  );
  refused({ model: "m", prompt: [1], max_tokens: 10 }, /exceeds max_seq_len/);
});
