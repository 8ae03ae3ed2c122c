/**
 * The quickstart end to end: `dynamo serve --recipe recipes/quickstart.yaml` as a real
 * process tree (frontend + two mocker workers), driven by the official OpenAI SDK.
 */
import assert from "node:assert/strict";
import OpenAI from "openai";
import {
  eventually,
  freePort,
  MODEL,
  processAlive,
  QUICKSTART,
  runDynamo,
  RunningDynamo,
} from "./_harness.ts";
import { qwen3Tokenizer } from "../runtime/llm/testing.ts";

interface StatusRow {
  instance_id: number;
  model: string;
  role: string;
  pid: number;
  address: string;
}

async function status(discoveryDir: string): Promise<StatusRow[]> {
  const r = await runDynamo(["status", "--json", "--discovery-dir", discoveryDir]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as StatusRow[];
}

Deno.test({
  name: "dynamo serve --recipe quickstart serves the OpenAI SDK and survives a killed worker",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const port = freePort();
    const discoveryDir = await Deno.makeTempDir({ prefix: "dynamo-e2e-" });
    // Ten times faster than real time keeps the test quick; the behaviour is the same.
    const serve = new RunningDynamo([
      "serve",
      "--recipe",
      QUICKSTART,
      "--http-port",
      String(port),
      "--discovery-dir",
      discoveryDir,
    ]);
    const client = new OpenAI({
      baseURL: `http://127.0.0.1:${port}/v1`,
      apiKey: "unused",
      maxRetries: 0,
    });
    try {
      await serve.waitForLine(/dynamo serve: ready/, 60_000);
      await eventually(
        async () => (await status(discoveryDir)).length === 2 ? true : undefined,
        15_000,
        "two workers",
      );

      await t.step("lists the model", async () => {
        const models = await client.models.list();
        assert.deepEqual(models.data.map((m) => m.id), [MODEL]);
      });

      await t.step("completes a chat without streaming, with true usage", async () => {
        const res = await client.chat.completions.create({
          model: MODEL,
          messages: [{ role: "user", content: "Say something." }],
          max_tokens: 12,
          temperature: 0,
          ignore_eos: true, // a dynamo (and vLLM) extension
        } as OpenAI.ChatCompletionCreateParamsNonStreaming);
        assert.equal(res.object, "chat.completion");
        assert.equal(res.choices[0]!.finish_reason, "length");
        assert.equal(res.usage?.completion_tokens, 12);
        assert.ok(res.choices[0]!.message.content!.trim().length > 0);
        // The prompt is the chat template rendered and tokenized; count it independently.
        const tok = await qwen3Tokenizer();
        const expected = tok.encode(tok.renderChat([{ role: "user", content: "Say something." }]), {
          addSpecialTokens: false,
        }).length;
        assert.equal(res.usage?.prompt_tokens, expected);
      });

      await t.step(
        "streams a chat whose chunks agree with usage and with the unary answer",
        async () => {
          const request = {
            model: MODEL,
            messages: [{ role: "user" as const, content: "Tell me a story." }],
            max_tokens: 20,
            temperature: 0,
            ignore_eos: true,
          };
          const unary = await client.chat.completions.create(request);
          const stream = await client.chat.completions.create({
            ...request,
            stream: true,
            stream_options: { include_usage: true },
          });
          let text = "";
          let contentChunks = 0;
          let finish: string | null = null;
          let usage: OpenAI.CompletionUsage | undefined;
          for await (const chunk of stream) {
            if (chunk.usage) usage = chunk.usage;
            const choice = chunk.choices[0];
            if (choice === undefined) continue;
            if (choice.delta.content) {
              text += choice.delta.content;
              contentChunks++;
            }
            if (choice.finish_reason) finish = choice.finish_reason;
          }
          assert.equal(finish, "length");
          assert.equal(usage?.completion_tokens, 20);
          assert.equal(contentChunks, 20, "one content chunk per generated token");
          assert.equal(text, unary.choices[0]!.message.content);
          assert.deepEqual(usage, unary.usage);
        },
      );

      await t.step("completes text, reusing the cached prefix of a repeated prompt", async () => {
        const prompt = "The history of the city begins with a small river crossing. ".repeat(30);
        const first = await client.completions.create({ model: MODEL, prompt, max_tokens: 5 });
        assert.equal(first.object, "text_completion");
        assert.ok(first.choices[0]!.text.length > 0);
        const pinned = {
          "x-worker-instance-id": String((await status(discoveryDir))[0]!.instance_id),
        };
        const a = await client.completions.create({ model: MODEL, prompt, max_tokens: 5 }, {
          headers: pinned,
        });
        const b = await client.completions.create({ model: MODEL, prompt, max_tokens: 5 }, {
          headers: pinned,
        });
        assert.equal(a.usage?.prompt_tokens, b.usage?.prompt_tokens);
        // @ts-ignore: prompt_tokens_details is part of the usage object
        const cached = b.usage?.prompt_tokens_details?.cached_tokens as number;
        assert.ok(cached >= 64 && cached < b.usage!.prompt_tokens, `cached_tokens=${cached}`);
      });

      await t.step("ends output before a stop string", async () => {
        const res = await client.chat.completions.create({
          model: MODEL,
          messages: [{ role: "user", content: "Write." }],
          max_tokens: 200,
          temperature: 0,
          ignore_eos: true,
          stop: ["."],
        } as OpenAI.ChatCompletionCreateParamsNonStreaming);
        assert.equal(res.choices[0]!.finish_reason, "stop");
        assert.ok(!res.choices[0]!.message.content!.includes("."));
        assert.ok(res.usage!.completion_tokens < 200);
      });

      await t.step("rejects a malformed request with a 400 in OpenAI's error format", async () => {
        await assert.rejects(
          client.chat.completions.create({
            model: MODEL,
            messages: [{ role: "user", content: "x" }],
            temperature: 7,
          }),
          (err: unknown) => {
            assert.ok(err instanceof OpenAI.BadRequestError);
            assert.equal(err.status, 400);
            assert.equal((err.error as { param?: string }).param, "temperature");
            assert.equal((err.error as { type?: string }).type, "invalid_request_error");
            return true;
          },
        );
        const raw = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: "{not json",
        });
        assert.equal(raw.status, 400);
        const body = await raw.json();
        assert.equal(body.error.code, "invalid_json");
        assert.equal(typeof body.error.message, "string");
      });

      await t.step("answers 404 for an unknown model", async () => {
        await assert.rejects(
          client.chat.completions.create({
            model: "nope",
            messages: [{ role: "user", content: "x" }],
          }),
          (err: unknown) => err instanceof OpenAI.NotFoundError,
        );
      });

      await t.step("a client that disconnects frees its worker's slot", async () => {
        const metric = async (pattern: RegExp): Promise<number> => {
          const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
          return [...text.matchAll(pattern)].reduce((sum, m) => sum + Number(m[1]), 0);
        };
        const disconnected = /^dynamo_frontend_disconnected_clients (\d+)$/gm;
        const running = /^dynamo_frontend_worker_requests_running\{[^}]*\} (\d+)$/gm;
        const before = await metric(disconnected);
        const abort = new AbortController();
        const res = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            model: MODEL,
            messages: [{ role: "user", content: "A very long story, please." }],
            max_tokens: 20_000,
            ignore_eos: true,
            stream: true,
          }),
          signal: abort.signal,
        });
        const reader = res.body!.getReader();
        await reader.read(); // the first chunk: the request is running on a worker
        await eventually(
          async () => (await metric(running)) > 0 ? true : undefined,
          10_000,
          "a running request",
        );
        abort.abort();
        await eventually(
          async () => (await metric(disconnected)) === before + 1 ? true : undefined,
          10_000,
          "the frontend to count the disconnect",
        );
        // The workers' published load (every 500 ms) shows the request gone.
        await eventually(
          async () => (await metric(running)) === 0 ? true : undefined,
          10_000,
          "the worker to free the request",
        );
      });

      await t.step(
        "drops a SIGKILLed worker from discovery within 15 s and keeps serving",
        async () => {
          const before = await status(discoveryDir);
          assert.equal(before.length, 2);
          const victim = before[0]!;
          const killedAt = Date.now();
          Deno.kill(victim.pid, "SIGKILL");
          await eventually(
            async () => {
              const rows = await status(discoveryDir);
              return rows.some((r) => r.instance_id === victim.instance_id) ? undefined : true;
            },
            15_000,
            `instance ${victim.instance_id} to leave discovery`,
          );
          const goneAfterMs = Date.now() - killedAt;
          console.log(`killed worker left discovery after ${goneAfterMs} ms`);
          for (let i = 0; i < 8; i++) {
            const res = await client.chat.completions.create({
              model: MODEL,
              messages: [{ role: "user", content: `Request ${i}` }],
              max_tokens: 4,
            });
            assert.ok(res.choices[0]!.finish_reason !== null);
          }
        },
      );
    } finally {
      const rows = await status(discoveryDir).catch(() => []);
      const code = await serve.stop("SIGTERM");
      assert.equal(code.code, 0, serve.lines.slice(-20).join("\n"));
      for (const r of rows) assert.ok(!processAlive(r.pid), `worker ${r.pid} outlived serve`);
      await Deno.remove(discoveryDir, { recursive: true });
    }
  },
});
