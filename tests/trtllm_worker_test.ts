/**
 * `dynamo worker --engine trtllm` end to end, against an executable named `trtllm-serve` on
 * PATH that behaves like TensorRT-LLM's server (the stand-in): a KV-routing frontend and
 * such a worker serve chat completions through the OpenAI SDK with true usage and the
 * engine's cached tokens, TensorRT-LLM's map-form KV events reach the router's index, the
 * worker's options file merges the user's, the worker's usage errors (no executable, flags
 * that do not fit) exit 2, and the TensorRT-LLM recipe builds the documented command line.
 */
import assert from "node:assert/strict";
import OpenAI from "openai";
import { parseFlags } from "../cli/flags.ts";
import { workerCommand } from "../cli/worker.ts";
import { trtllmWorkerEngine } from "../cli/worker_external.ts";
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
    "dynamo worker --engine trtllm: chat through a KV-routing frontend with cached tokens and TensorRT-LLM's KV events",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const fake = await installFakeEngine("trtllm");
    const dir = await Deno.makeTempDir({ prefix: "dynamo-trtllm-e2e-" });
    const port = freePort();
    const common = ["--discovery-dir", dir, "--namespace", "trtllm-e2e"];
    // The user's own LLM API options: the worker merges its own over them.
    const userOptions = `${dir}/user.yaml`;
    await Deno.writeTextFile(userOptions, "kv_cache_config:\n  free_gpu_memory_fraction: 0.8\n");
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
      "trtllm",
      "--model-path",
      QWEN3_TOKENIZER_DIR,
      "--model-name",
      MODEL,
      "--block-size",
      "16",
      "--max-num-seqs",
      "64",
      "--context-length",
      "8192",
      ...common,
      "--",
      "--extra_llm_api_options",
      userOptions,
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
      // The command line the worker gave trtllm-serve, and the options file it wrote.
      const command =
        / (\S+) --host 127\.0\.0\.1 --port \d+ --extra_llm_api_options (\S+\/extra_llm_api_options\.yaml) --max_batch_size 64 --max_seq_len 8192"/
          .exec(started);
      assert.ok(command !== null, started);
      assert.equal(command[1], QWEN3_TOKENIZER_DIR);
      const options = await Deno.readTextFile(command[2]!);
      assert.match(options, /free_gpu_memory_fraction: 0\.8/);
      assert.match(options, /tokens_per_block: 16/);
      assert.match(options, /enable_kv_cache_events: true/);
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
      assert.equal(cached % 16, 0, "whole blocks");

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
      // The options folder the worker made is gone with it.
      await assert.rejects(Deno.stat(command[2]!));
    } finally {
      await worker.stop("SIGKILL", 5_000);
      await frontend.stop("SIGTERM");
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      await Deno.remove(fake.dir, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test("dynamo worker --engine trtllm: a missing executable, or flags that do not fit, exit 2 naming them", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dynamo-nopath-" });
  const base = ["worker", "--engine", "trtllm", "--model-path", QWEN3_TOKENIZER_DIR];
  const searched = `${dir}/bin:/usr/bin:/bin`;
  const missing = await runDynamo([...base, "--discovery-dir", dir], { env: { PATH: searched } });
  assert.equal(missing.code, 2, missing.stderr);
  assert.match(
    missing.stderr,
    /Cannot start engine "trtllm": executable "trtllm-serve" not found on PATH \(searched [^)]*\); install it or pass --engine-bin PATH/,
  );
  const fake = await installFakeEngine("trtllm");
  const cases: [string[], RegExp][] = [
    [["--engine-bin", fake.bin, "--seed", "3"], /--seed does not apply to --engine trtllm/],
    [
      ["--engine-bin", fake.bin],
      /Cannot tell TensorRT-LLM's context length: pass --context-length N/,
    ],
    [
      ["--engine-bin", fake.bin, "--", "--port", "9000"],
      /Cannot pass --port to TensorRT-LLM after "--"/,
    ],
  ];
  for (const [args, expected] of cases) {
    const { code, stderr } = await runDynamo([...base, ...args]);
    assert.equal(code, 2, stderr);
    assert.match(stderr, expected);
  }
  await Deno.remove(dir, { recursive: true });
  await Deno.remove(fake.dir, { recursive: true });
});

Deno.test("recipes/trtllm-agg.yaml is valid, and its workers build the documented trtllm-serve command line", async () => {
  const recipe = await loadRecipe(`${ROOT}recipes/trtllm-agg.yaml`);
  assert.equal(recipe.frontend.router_mode, "kv");
  assert.equal(recipe.workers[0]!.engine, "trtllm");
  const fake = await installFakeEngine("trtllm");
  const argv = [
    "--engine",
    "trtllm",
    "--model-name",
    recipe.model.name,
    "--model-path",
    recipe.model.path,
    ...Object.entries(recipe.workers[0]!.args).flatMap(([k, v]) => [`--${k}`, String(v)]),
    "--engine-bin",
    fake.bin,
  ];
  const served = await trtllmWorkerEngine(parseFlags(workerCommand.flags, argv), {
    loadIntervalMs: 500,
  });
  try {
    const spec = served.engine.adapter.command({ http: 8100, kv_events: 8101 });
    const file = spec.argv[7]!;
    assert.deepEqual(spec.argv, [
      fake.bin,
      "Qwen/Qwen3-0.6B",
      "--host",
      "127.0.0.1",
      "--port",
      "8100",
      "--extra_llm_api_options",
      file,
      "--max_seq_len",
      "40960",
      "--kv_cache_free_gpu_memory_fraction",
      "0.4",
    ]);
    assert.match(file, /\/extra_llm_api_options\.yaml$/);
    assert.match(spec.files![file]!, /tokens_per_block: 32/);
  } finally {
    await served.dispose?.();
    await Deno.remove(fake.dir, { recursive: true });
  }
});
