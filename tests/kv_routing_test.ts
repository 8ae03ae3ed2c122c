/**
 * KV-aware routing end to end: the quickstart with --router-mode kv (two mocker workers
 * publishing KV events in vLLM's format through their workers), and the standalone router.
 */
import assert from "node:assert/strict";
import OpenAI from "openai";
import { QWEN3_TOKENIZER_DIR } from "../runtime/llm/testing.ts";
import { eventually, freePort, MODEL, QUICKSTART, RunningDynamo } from "./_harness.ts";

const PREFIX = "You are a careful assistant. " +
  Array.from({ length: 560 }, (_, i) => `rule${i}`).join(" ");

type Answer = OpenAI.ChatCompletion & {
  nvext?: { worker_id?: { decode_worker_id: number } };
  usage: OpenAI.CompletionUsage & { prompt_tokens_details?: { cached_tokens?: number } };
};

function ask(client: OpenAI, system: string, user: string, maxTokens = 4): Promise<Answer> {
  return client.chat.completions.create({
    model: MODEL,
    messages: [{ role: "system", content: system }, { role: "user", content: user }],
    max_tokens: maxTokens,
    nvext: { extra_fields: ["worker_id"] },
  } as OpenAI.ChatCompletionCreateParamsNonStreaming) as Promise<Answer>;
}

async function route(port: number, system: string, user: string) {
  const res = await fetch(`http://127.0.0.1:${port}/v1/route`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model: MODEL,
      messages: [{ role: "system", content: system }, { role: "user", content: user }],
    }),
  });
  assert.equal(res.status, 200);
  return await res.json() as {
    worker_id: number;
    isl_tokens: number;
    candidates: { worker_id: number; overlap_blocks: number; logit: number }[];
  };
}

Deno.test({
  name: "dynamo serve --router-mode kv keeps a shared prefix on one worker and explains it",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const port = freePort();
    const dir = await Deno.makeTempDir({ prefix: "dynamo-kv-" });
    const serve = new RunningDynamo([
      "serve",
      "--recipe",
      QUICKSTART,
      "--http-port",
      String(port),
      "--discovery-dir",
      dir,
      "--router-mode",
      "kv",
    ]);
    const client = new OpenAI({
      baseURL: `http://127.0.0.1:${port}/v1`,
      apiKey: "x",
      maxRetries: 0,
    });
    try {
      await serve.waitForLine(/dynamo serve: ready/, 60_000);
      await eventually(
        async () => {
          const h = await (await fetch(`http://127.0.0.1:${port}/health`)).json();
          return h.instances.length === 2 ? true : undefined;
        },
        15_000,
        "both workers",
      );

      await t.step(
        "three requests sharing a 2,000-token prefix land on one worker and hit its cache",
        async () => {
          const answers = [];
          for (const q of ["First question?", "Second question?", "Third question?"]) {
            answers.push(await ask(client, PREFIX, q));
          }
          assert.ok(
            answers[0]!.usage.prompt_tokens > 2000,
            `prompt ${answers[0]!.usage.prompt_tokens}`,
          );
          const workers = new Set(answers.map((a) => a.nvext?.worker_id?.decode_worker_id));
          assert.equal(workers.size, 1, `workers ${[...workers]}`);
          assert.equal(answers[0]!.usage.prompt_tokens_details?.cached_tokens, 0);
          for (const a of answers.slice(1)) {
            const cached = a.usage.prompt_tokens_details?.cached_tokens ?? 0;
            assert.ok(cached > 1900, `cached ${cached}`);
          }
        },
      );

      await t.step("POST /v1/route explains the decision the request then follows", async () => {
        const explained = await route(port, PREFIX, "Fourth question?");
        const chosen = explained.candidates.find((c) => c.worker_id === explained.worker_id)!;
        assert.ok(chosen.overlap_blocks >= 30, `overlap ${chosen.overlap_blocks}`);
        for (const c of explained.candidates) assert.ok(chosen.logit <= c.logit);
        const answer = await ask(client, PREFIX, "Fourth question?");
        assert.equal(answer.nvext?.worker_id?.decode_worker_id, explained.worker_id);
        const other = await route(port, "A different system prompt entirely.", "Hi");
        assert.ok(other.candidates.every((c) => c.overlap_blocks === 0));
      });

      await t.step(
        "concurrent requests without a shared prefix spread over both workers",
        async () => {
          const answers = await Promise.all(
            Array.from({ length: 8 }, (_, i) =>
              ask(
                client,
                `Unrelated prompt number ${i}. ${"Lorem ipsum ".repeat(40 + i)}`,
                "Go.",
                60,
              )),
          );
          const workers = new Set(answers.map((a) => a.nvext?.worker_id?.decode_worker_id));
          assert.equal(workers.size, 2);
        },
      );

      await t.step("exports the router's metrics", async () => {
        const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
        assert.match(text, /dynamo_router_overhead_total_ms_count\{router_id="[0-9a-f]+"\} [1-9]/);
        assert.match(
          text,
          /dynamo_component_kv_cache_events_applied\{event_type="stored",status="ok"\} [1-9]/,
        );
        assert.match(text, /dynamo_router_index_blocks\{router_id="[0-9a-f]+"\} [1-9]/);
        assert.match(text, /dynamo_component_router_kv_hit_rate_count/);
      });
    } finally {
      const status = await serve.stop("SIGTERM");
      assert.equal(status.code, 0);
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "dynamo router serves several frontends (--router-url) from one index",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "dynamo-router-" });
    const common = ["--discovery-dir", dir, "--namespace", "routed"];
    const routerPort = freePort();
    const [portA, portB] = [freePort(), freePort()];
    const procs = [
      new RunningDynamo([
        "router",
        "--http-host",
        "127.0.0.1",
        "--http-port",
        String(routerPort),
        ...common,
      ]),
      ...[portA, portB].map((p) =>
        new RunningDynamo([
          "frontend",
          "--http-host",
          "127.0.0.1",
          "--http-port",
          String(p),
          "--router-url",
          `http://127.0.0.1:${routerPort}`,
          ...common,
        ])
      ),
      ...[0, 1].map(() =>
        new RunningDynamo([
          "worker",
          "--model-path",
          QWEN3_TOKENIZER_DIR,
          "--model-name",
          MODEL,
          "--speedup-ratio",
          "10",
          ...common,
        ])
      ),
    ];
    try {
      const clients = [portA, portB].map((p) =>
        new OpenAI({ baseURL: `http://127.0.0.1:${p}/v1`, apiKey: "x", maxRetries: 0 })
      );
      for (const c of clients) {
        await eventually(
          async () => {
            const models = await c.models.list().catch(() => undefined);
            return models?.data.length === 1 ? true : undefined;
          },
          40_000,
          "the frontend to list the model",
        );
      }
      await eventually(
        async () => {
          const h = await (await fetch(`http://127.0.0.1:${routerPort}/health`)).json().catch(() =>
            undefined
          );
          return h?.models?.[0]?.workers === 2 ? true : undefined;
        },
        20_000,
        "the router to see both workers",
      );
      // Alternate frontends: the router's shared index keeps the prefix on one worker.
      const answers: Answer[] = [];
      for (let i = 0; i < 4; i++) {
        answers.push(await ask(clients[i % 2]!, PREFIX, `Question ${i}?`));
      }
      const workers = new Set(answers.map((a) => a.nvext?.worker_id?.decode_worker_id));
      assert.equal(workers.size, 1);
      assert.ok((answers[3]!.usage.prompt_tokens_details?.cached_tokens ?? 0) > 1900);
      const booked = await (await fetch(`http://127.0.0.1:${routerPort}/v1/route`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: MODEL, prompt: PREFIX, book: true, request_id: "gw-1" }),
      })).json();
      assert.equal(booked.booked, true);
      assert.equal(booked.request_id, "gw-1");
      const freed = await fetch(`http://127.0.0.1:${routerPort}/v1/route/free`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ request_id: "gw-1" }),
      });
      assert.equal(freed.status, 200);
      await freed.body?.cancel();
    } finally {
      for (const p of procs) await p.stop("SIGTERM");
      await Deno.remove(dir, { recursive: true });
    }
  },
});
