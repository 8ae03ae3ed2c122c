import assert from "node:assert/strict";
import type { EngineOutput, EngineRequest } from "../../protocol/mod.ts";
import { DynamoError } from "../../errors/mod.ts";
import { sglangGenerateBody, SglangOutputTracker, streamSglangGenerate } from "./sglang_client.ts";

const REQUEST: EngineRequest = {
  request_id: "r1",
  model: "m",
  token_ids: [1, 2, 3],
  stop_conditions: { max_tokens: 5, min_tokens: 2, ignore_eos: true, stop_token_ids: [9] },
  sampling_options: { temperature: 0.5, top_p: null, top_k: 4, seed: 7 },
  eos_token_ids: [151645],
};

Deno.test("sglangGenerateBody() sends token ids and SGLang's sampling names, leaving unset options out", () => {
  assert.deepEqual(sglangGenerateBody(REQUEST), {
    input_ids: [1, 2, 3],
    sampling_params: {
      max_new_tokens: 5,
      min_new_tokens: 2,
      ignore_eos: true,
      stop_token_ids: [9],
      temperature: 0.5,
      top_k: 4,
      sampling_seed: 7,
    },
    stream: true,
    rid: "r1",
  });
});

Deno.test("SglangOutputTracker.take() reads cumulative and incremental output_ids alike", () => {
  const cumulative = new SglangOutputTracker();
  assert.deepEqual(cumulative.take([5], 1), [5]);
  assert.deepEqual(cumulative.take([5, 5], 2), [5]);
  assert.deepEqual(cumulative.take([5, 5, 6], 3), [6]);
  const incremental = new SglangOutputTracker();
  assert.deepEqual(incremental.take([5], 1), [5]);
  // The same token again is new: the count says the chunk holds only new ids.
  assert.deepEqual(incremental.take([5], 2), [5]);
  assert.deepEqual(incremental.take([6, 7], 4), [6, 7]);
  assert.deepEqual(incremental.seen, [5, 5, 6, 7]);
  const uncounted = new SglangOutputTracker();
  assert.deepEqual(uncounted.take([1, 2], undefined), [1, 2]);
  assert.deepEqual(uncounted.take([1, 2, 3], undefined), [3]);
  assert.deepEqual(uncounted.take([4], undefined), [4]);
});

/** Serves one canned SSE body on /generate for the client to read. */
async function withServer(
  chunks: readonly string[],
  body: (base: string) => Promise<void>,
): Promise<void> {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () =>
      new Response(chunks.map((c) => `data: ${c}\n\n`).join(""), {
        headers: { "content-type": "text/event-stream" },
      }),
  );
  try {
    await body(`http://127.0.0.1:${server.addr.port}`);
  } finally {
    await server.shutdown();
  }
}

async function collect(base: string): Promise<EngineOutput[]> {
  const out: EngineOutput[] = [];
  for await (
    const o of streamSglangGenerate(base, REQUEST, { signal: new AbortController().signal })
  ) {
    out.push(o);
  }
  return out;
}

Deno.test("streamSglangGenerate() yields new tokens and ends with meta_info's usage", async () => {
  const meta = (n: number, finish: unknown) =>
    JSON.stringify({
      prompt_tokens: 3,
      completion_tokens: n,
      cached_tokens: 2,
      finish_reason: finish,
    });
  await withServer([
    `{"text":"a","output_ids":[10],"meta_info":${meta(1, null)}}`,
    `{"text":"ab","output_ids":[10,11],"meta_info":${meta(2, { type: "length", length: 2 })}}`,
    "[DONE]",
  ], async (base) => {
    const out = await collect(base);
    assert.deepEqual(out, [
      { token_ids: [10] },
      {
        token_ids: [11],
        finish_reason: "length",
        completion_usage: {
          prompt_tokens: 3,
          completion_tokens: 2,
          prompt_tokens_details: { cached_tokens: 2 },
        },
      },
    ]);
  });
});

Deno.test("streamSglangGenerate() takes an error chunk before any token as invalid_request, a missing finish as engine_error", async () => {
  await withServer(
    [`{"error":{"message":"The input (9 tokens) is longer"}}`, "[DONE]"],
    async (base) => {
      await assert.rejects(
        collect(base),
        (err: unknown) =>
          err instanceof DynamoError && err.errorClass === "invalid_request" &&
          /is longer/.test(err.message),
      );
    },
  );
  await withServer(
    [`{"output_ids":[1],"meta_info":{"completion_tokens":1}}`, "[DONE]"],
    async (base) => {
      await assert.rejects(
        collect(base),
        (err: unknown) => err instanceof DynamoError && err.errorClass === "engine_error",
      );
    },
  );
});
