/**
 * `dynamo worker --engine sglang` end to end, against an executable named `sglang` on PATH
 * that behaves like SGLang's server (the stand-in): a KV-routing frontend and such a worker
 * serve chat completions through the OpenAI SDK with true usage and the engine's cached
 * tokens, SGLang's KV events reach the router's index, the worker's usage errors (no
 * executable, flags that do not fit) exit 2, and the SGLang recipe builds the documented
 * command line.
 */
import assert from "node:assert/strict";
import OpenAI from "openai";
import { parseFlags } from "../cli/flags.ts";
import { workerCommand } from "../cli/worker.ts";
import { sglangWorkerEngine } from "../cli/worker_external.ts";
import { loadRecipe } from "../runtime/config/mod.ts";
import { QWEN3_TOKENIZER_DIR } from "../runtime/llm/testing.ts";
import { eventually, freePort, MODEL, ROOT, runDynamo, RunningDynamo } from "./_harness.ts";
import { installFakeEngine } from "./sglang_trtllm_fake.ts";
import { waitGroupGone } from "./vllm_fake.ts";

const PREFIX = "You are a careful assistant. " +
  Array.from({ length: 200 }, (_, i) => `rule${i}`).join(" ");

type Answer = OpenAI.ChatCompletion & {
  usage: OpenAI.CompletionUsage & { prompt_tokens_details?: { cached_tokens?: number } };
};

Deno.test({
  name:
    "dynamo worker --engine sglang: chat through a KV-routing frontend with cached tokens and SGLang's KV events",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const fake = await installFakeEngine("sglang");
    const dir = await Deno.makeTempDir({ prefix: "dynamo-sglang-" });
    const port = freePort();
    const common = ["--discovery-dir", dir, "--namespace", "sglang-e2e"];
    const frontend = new RunningDynamo([
      "frontend",
      "--http-host",
      "127.0.0.1",
      "--http-port",
      String(port),
      "--router-mode",
      "kv",
      ...common,
    ]);
    const worker = new RunningDynamo([
      "worker",
      "--engine",
      "sglang",
      "--model-path",
      QWEN3_TOKENIZER_DIR,
      "--model-name",
      MODEL,
      ...common,
      "--",
      "--mem-fraction-static",
      "0.8",
    ], { PATH: fake.path });
    const client = new OpenAI({
      baseURL: `http://127.0.0.1:${port}/v1`,
      apiKey: "x",
      maxRetries: 0,
    });
    const ask = (user: string, maxTokens: number) =>
      client.chat.completions.create({
        model: MODEL,
        messages: [{ role: "system", content: PREFIX }, { role: "user", content: user }],
        max_tokens: maxTokens,
        ignore_eos: true,
      } as OpenAI.ChatCompletionCreateParamsNonStreaming) as Promise<Answer>;
    try {
      await worker.waitForLine(/Worker ready/, 40_000);
      const started = worker.lines.find((l) => /Engine started pid=\d+/.test(l))!;
      // The command line the worker gave SGLang (the log escapes its quotes).
      assert.match(
        started.replaceAll('\\"', '"'),
        / serve --model-path \S+ --host 127\.0\.0\.1 --port \d+ --served-model-name Qwen\/Qwen3-0\.6B --page-size 16 --enable-metrics --kv-events-config \{"publisher":"zmq","endpoint":"tcp:\/\/\*:\d+","replay_endpoint":"tcp:\/\/\*:\d+","topic":"kv-events"\} --mem-fraction-static 0\.8/,
      );
      await eventually(
        async () => {
          const res = await fetch(`http://127.0.0.1:${port}/v1/models`).catch(() => undefined);
          const body = await res?.json().catch(() => undefined);
          return body?.data?.length === 1 || undefined;
        },
        20_000,
        "the model to be listed",
      );
      const first = await ask("First question?", 6);
      assert.equal(first.choices[0]!.finish_reason, "length");
      assert.ok(first.choices[0]!.message.content!.length > 0);
      assert.equal(first.usage.completion_tokens, 6);
      assert.equal(first.usage.total_tokens, first.usage.prompt_tokens + 6);
      // SGLang's BlockStored events reach the frontend's index through the worker.
      await eventually(
        async () => {
          const text = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text())
            .catch(() => "");
          const m = /dynamo_router_index_blocks\{[^}]*\} (\d+)/.exec(text);
          return m !== null && Number(m[1]) >= 10 ? true : undefined;
        },
        10_000,
        "the prefix's blocks in the router's index",
      );
      const second = await ask("Second question?", 5);
      const cached = second.usage.prompt_tokens_details?.cached_tokens ?? 0;
      assert.ok(cached >= 320, `cached ${cached} of ${second.usage.prompt_tokens}`);
      assert.equal(cached % 16, 0, "whole pages");

      const stream = await client.chat.completions.create({
        model: MODEL,
        messages: [{ role: "user", content: "Count to five." }],
        max_tokens: 7,
        ignore_eos: true,
        stream: true,
        stream_options: { include_usage: true },
      } as OpenAI.ChatCompletionCreateParamsStreaming);
      let text = "";
      let usage: OpenAI.CompletionUsage | undefined;
      for await (const chunk of stream) {
        text += chunk.choices[0]?.delta.content ?? "";
        usage = chunk.usage ?? usage;
      }
      assert.ok(text.length > 0);
      assert.equal(usage?.completion_tokens, 7);

      const enginePid = Number(/pid=(\d+)/.exec(started)![1]);
      const status = await worker.stop("SIGTERM");
      assert.equal(status.code, 0);
      await waitGroupGone(enginePid, 5_000);
    } finally {
      await worker.stop("SIGKILL", 5_000);
      await frontend.stop("SIGTERM");
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      await Deno.remove(fake.dir, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test("dynamo worker --engine sglang: a missing executable, or flags that do not fit, exit 2 naming them", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dynamo-nopath-" });
  const base = ["worker", "--engine", "sglang", "--model-path", QWEN3_TOKENIZER_DIR];
  const searched = `${dir}/bin:/usr/bin:/bin`;
  const missing = await runDynamo([...base, "--discovery-dir", dir], { env: { PATH: searched } });
  assert.equal(missing.code, 2, missing.stderr);
  assert.match(
    missing.stderr,
    /Cannot start engine "sglang": executable "sglang" not found on PATH \(searched [^)]*\); install it or pass --engine-bin PATH/,
  );
  const fake = await installFakeEngine("sglang");
  const owned = await runDynamo([...base, "--engine-bin", fake.bin, "--", "--page-size", "32"]);
  assert.equal(owned.code, 2, owned.stderr);
  assert.match(owned.stderr, /Cannot pass --page-size to SGLang after "--": use --block-size/);
  await Deno.remove(dir, { recursive: true });
  await Deno.remove(fake.dir, { recursive: true });
});

Deno.test("recipes/sglang-agg.yaml is valid, and its workers build the documented SGLang command line", async () => {
  const recipe = await loadRecipe(`${ROOT}recipes/sglang-agg.yaml`);
  assert.equal(recipe.frontend.router_mode, "kv");
  assert.equal(recipe.workers[0]!.engine, "sglang");
  const fake = await installFakeEngine("sglang");
  // As `dynamo serve` builds a worker's flags from the recipe.
  const argv = [
    "--engine",
    "sglang",
    "--model-name",
    recipe.model.name,
    "--model-path",
    recipe.model.path,
    ...Object.entries(recipe.workers[0]!.args).flatMap(([k, v]) => [`--${k}`, String(v)]),
    "--engine-bin",
    fake.bin,
  ];
  const served = await sglangWorkerEngine(parseFlags(workerCommand.flags, argv), {
    loadIntervalMs: 500,
  });
  assert.equal(served.tokenizerDir, recipe.model.path);
  const spec = served.engine.adapter.command({ http: 8100, kv_events: 8101, kv_replay: 8102 });
  assert.deepEqual(spec.argv, [
    fake.bin,
    "serve",
    "--model-path",
    "Qwen/Qwen3-0.6B",
    "--host",
    "127.0.0.1",
    "--port",
    "8100",
    "--served-model-name",
    "Qwen/Qwen3-0.6B",
    "--page-size",
    "16",
    "--enable-metrics",
    "--kv-events-config",
    '{"publisher":"zmq","endpoint":"tcp://*:8101","replay_endpoint":"tcp://*:8102","topic":"kv-events"}',
    "--mem-fraction-static",
    "0.4",
  ]);
  await Deno.remove(fake.dir, { recursive: true });
});
