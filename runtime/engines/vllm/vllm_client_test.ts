import assert from "node:assert/strict";
import { DynamoError } from "../../errors/mod.ts";
import type { EngineOutput, EngineRequest } from "../../protocol/mod.ts";
import { streamVllmCompletion, vllmCompletionBody } from "./vllm_client.ts";

const REQUEST: EngineRequest = {
  request_id: "r1",
  model: "m",
  token_ids: [5, 6, 7],
  stop_conditions: { max_tokens: 3, min_tokens: 1, ignore_eos: false, stop_token_ids: [9] },
  sampling_options: { temperature: 0.5, top_p: null, top_k: 20, seed: 7 },
  eos_token_ids: [2],
};

Deno.test("vllmCompletionBody() sends the token ids as a token-id prompt with vLLM's option names", () => {
  assert.deepEqual(vllmCompletionBody(REQUEST, "served"), {
    model: "served",
    prompt: [5, 6, 7],
    max_tokens: 3,
    stream: true,
    stream_options: { include_usage: true },
    return_token_ids: true,
    min_tokens: 1,
    stop_token_ids: [9],
    temperature: 0.5,
    top_k: 20,
    seed: 7,
  });
});

/** Serves one canned answer to POST /v1/completions and records the body it got. */
async function withServer(
  answer: (body: unknown) => Response,
  run: (base: string) => Promise<void>,
): Promise<void> {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => answer(await req.json()),
  );
  try {
    await run(`http://127.0.0.1:${server.addr.port}`);
  } finally {
    await server.shutdown();
  }
}

function sse(...events: unknown[]): Response {
  const text = events.map((e) => `data: ${typeof e === "string" ? e : JSON.stringify(e)}\n\n`)
    .join("");
  return new Response(text, { headers: { "content-type": "text/event-stream" } });
}

async function collect(base: string): Promise<EngineOutput[]> {
  const out: EngineOutput[] = [];
  const signal = new AbortController().signal;
  for await (const o of streamVllmCompletion(base, REQUEST, { servedModelName: "m", signal })) {
    out.push(o);
  }
  return out;
}

const choice = (ids: number[], finish: string | null = null) => ({
  choices: [{ index: 0, text: "x", token_ids: ids, finish_reason: finish }],
});

Deno.test("streamVllmCompletion() yields token ids and puts the final usage on the last item", async () => {
  await withServer(
    () =>
      sse(
        { choices: [{ index: 0, text: "", token_ids: [], prompt_token_ids: [5, 6, 7] }] },
        choice([11]),
        choice([12, 9], "stop"),
        {
          choices: [],
          usage: {
            prompt_tokens: 3,
            completion_tokens: 3,
            prompt_tokens_details: { cached_tokens: 2 },
          },
        },
        "[DONE]",
      ),
    async (base) => {
      assert.deepEqual(await collect(base), [
        { token_ids: [11] },
        {
          token_ids: [12, 9],
          finish_reason: "stop",
          completion_usage: {
            prompt_tokens: 3,
            completion_tokens: 3,
            prompt_tokens_details: { cached_tokens: 2 },
          },
        },
      ]);
    },
  );
});

Deno.test("streamVllmCompletion() classifies 4xx, 5xx, errors inside the stream and a cut stream", async () => {
  const cases: [Response, string, string][] = [
    [
      Response.json({ error: { message: "too long", type: "BadRequestError", code: 400 } }, {
        status: 400,
      }),
      "invalid_request",
      "too long",
    ],
    [new Response("boom", { status: 500 }), "engine_error", "boom"],
    [
      sse(choice([1]), { error: { message: "engine dead", code: 500 } }),
      "engine_error",
      "engine dead",
    ],
    [sse(choice([1])), "engine_error", "without a finish reason"],
    [sse({ choices: [{ index: 0, text: "hi", finish_reason: null }] }), "engine_error", "0.10.2"],
  ];
  for (const [response, errorClass, text] of cases) {
    await withServer(() => response, async (base) => {
      await assert.rejects(collect(base), (err: unknown) => {
        assert.ok(err instanceof DynamoError, String(err));
        assert.equal(err.errorClass, errorClass);
        assert.ok(err.message.includes(text), err.message);
        return true;
      });
    });
  }
  await assert.rejects(
    collect("http://127.0.0.1:1"),
    (err: unknown) => err instanceof DynamoError && err.reason === "engine_unreachable",
  );
});
