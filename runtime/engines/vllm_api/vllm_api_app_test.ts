import assert from "node:assert/strict";
import { qwen3Tokenizer } from "../../llm/testing.ts";
import { buildMockerVocabulary, MockerEngine } from "../mocker/mod.ts";
import { createVllmApiApp } from "./vllm_api_app.ts";

const MODEL = "Qwen/Qwen3-0.6B";

async function standIn() {
  const tokenizer = await qwen3Tokenizer();
  const engine = new MockerEngine({
    options: { blockSizeTokens: 16, numGpuBlocks: 512, speedupRatio: 50, contextLengthTokens: 256 },
    vocabulary: buildMockerVocabulary(
      (t) => tokenizer.encode(t, { addSpecialTokens: false }),
      [...tokenizer.eosTokenIds],
    ),
  });
  await engine.start();
  const app = createVllmApiApp({
    engine,
    tokenizer,
    servedModelNames: [MODEL],
    modelRoot: "/models/qwen",
    maxModelLen: 256,
    eosTokenIds: tokenizer.eosTokenIds,
    enablePromptTokensDetails: true,
    cache: { blockSize: 16, numGpuBlocks: 512, enablePrefixCaching: true },
  });
  return { engine, app };
}

function complete(
  app: { request: (p: string, i: RequestInit) => Response | Promise<Response> },
  body: object,
) {
  return app.request("/v1/completions", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

function events(text: string): string[] {
  return text.split("\n\n").filter((e) => e.startsWith("data: ")).map((e) => e.slice(6));
}

const PROMPT = Array.from({ length: 40 }, (_, i) => 500 + i);

Deno.test("vLLM stand-in: /health, /v1/models and /metrics as vLLM serves them", async () => {
  const { engine, app } = await standIn();
  try {
    const health = await app.request("/health");
    assert.equal(health.status, 200);
    assert.equal(await health.text(), "");
    const models = await (await app.request("/v1/models")).json();
    assert.equal(models.data[0].id, MODEL);
    assert.equal(models.data[0].max_model_len, 256);
    assert.equal(models.data[0].root, "/models/qwen");
    const metrics = await (await app.request("/metrics")).text();
    assert.match(
      metrics,
      /^vllm:num_requests_running\{engine="0",model_name="Qwen\/Qwen3-0.6B"\} 0.0$/m,
    );
    assert.match(metrics, /^vllm:kv_cache_usage_perc\{[^}]*\} 0.0$/m);
    assert.match(
      metrics,
      /vllm:cache_config_info\{block_size="16",[^}]*num_gpu_blocks="512"[^}]*\} 1.0/,
    );
  } finally {
    await engine.stop();
  }
});

Deno.test("vLLM stand-in: streamed token-id completions carry token_ids, then usage with cached tokens", async () => {
  const { engine, app } = await standIn();
  try {
    const ask = async () => {
      const res = await complete(app, {
        model: MODEL,
        prompt: PROMPT,
        max_tokens: 5,
        ignore_eos: true,
        stream: true,
        stream_options: { include_usage: true },
        return_token_ids: true,
      });
      assert.equal(res.status, 200);
      assert.match(res.headers.get("content-type")!, /text\/event-stream/);
      return events(await res.text());
    };
    await ask();
    const data = await ask();
    assert.equal(data.at(-1), "[DONE]");
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d));
    assert.deepEqual(chunks[0].choices[0].prompt_token_ids, PROMPT);
    const ids = chunks.flatMap((c) => c.choices[0]?.token_ids ?? []);
    assert.equal(ids.length, 5);
    assert.equal(chunks.at(-2).choices[0].finish_reason, "length");
    const usage = chunks.at(-1);
    assert.deepEqual(usage.choices, []);
    assert.deepEqual(usage.usage, {
      prompt_tokens: 40,
      total_tokens: 45,
      completion_tokens: 5,
      // 40 tokens = 2 full blocks of 16 cached by the first request.
      prompt_tokens_details: { cached_tokens: 32 },
    });
  } finally {
    await engine.stop();
  }
});

Deno.test("vLLM stand-in: unary text completions and vLLM's 400/404 answers", async () => {
  const { engine, app } = await standIn();
  try {
    const res = await complete(app, { prompt: "Hello there", max_tokens: 3, ignore_eos: true });
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.equal(body.object, "text_completion");
    assert.ok(body.choices[0].text.length > 0);
    assert.equal(body.choices[0].token_ids, null);
    assert.equal(body.usage.completion_tokens, 3);
    const bad: [object, number, RegExp][] = [
      [
        { prompt: Array(300).fill(1) },
        400,
        /maximum context length is 256 tokens\. However, your request has 300 input tokens/,
      ],
      [
        { prompt: [1, 2], max_tokens: 255 },
        400,
        /'max_tokens' or 'max_completion_tokens' is too large: 255/,
      ],
      [
        { prompt: [1], stream_options: { include_usage: true } },
        400,
        /only be defined when `stream=True`/,
      ],
      [{ prompt: [1], max_tokens: "many" }, 400, /max_tokens/],
      [{ prompt: [] }, 400, /must be provided and non-empty/],
      [{ prompt: [1], n: 2 }, 400, /does not support `n`/],
      [{ model: "other", prompt: [1] }, 404, /The model `other` does not exist/],
    ];
    for (const [request, status, message] of bad) {
      const r = await complete(app, request);
      assert.equal(r.status, status, JSON.stringify(request));
      const error = (await r.json()).error;
      assert.match(error.message, message);
      assert.equal(error.code, status);
      assert.equal(error.type, status === 404 ? "NotFoundError" : "BadRequestError");
    }
  } finally {
    await engine.stop();
  }
});

Deno.test("vLLM stand-in: a client that stops reading a stream aborts its request in the engine", async () => {
  const { engine, app } = await standIn();
  try {
    const res = await complete(app, {
      prompt: PROMPT,
      max_tokens: 200,
      ignore_eos: true,
      stream: true,
    });
    const reader = res.body!.getReader();
    await reader.read();
    assert.equal(engine.load().num_requests_running, 1);
    await reader.cancel();
    const deadline = Date.now() + 5_000;
    while (engine.load().num_requests_running > 0) {
      assert.ok(Date.now() < deadline, "the request still runs");
      await new Promise((r) => setTimeout(r, 5));
    }
  } finally {
    await engine.stop();
  }
});
