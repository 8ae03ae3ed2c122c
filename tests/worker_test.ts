/**
 * `dynamo frontend` and `dynamo worker` as separate processes, the way a multi-node
 * deployment runs them: a worker that gets SIGTERM leaves discovery first, finishes the
 * requests it is serving, and exits 0.
 */
import assert from "node:assert/strict";
import OpenAI from "openai";
import { QWEN3_TOKENIZER_DIR } from "../runtime/llm/testing.ts";
import { eventually, freePort, MODEL, runDynamo, RunningDynamo } from "./_harness.ts";

/** `dynamo worker` (the mocker) serving the bundled Qwen3 tokenizer as MODEL. */
function mockerWorker(...flags: string[]): RunningDynamo {
  return new RunningDynamo([
    "worker",
    "--model-path",
    QWEN3_TOKENIZER_DIR,
    "--model-name",
    MODEL,
    ...flags,
  ]);
}

Deno.test({
  name: "dynamo worker frees a disconnected client's slot and drains in-flight requests on SIGTERM",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "dynamo-worker-" });
    const port = freePort();
    const common = ["--discovery-dir", dir, "--namespace", "drain-test"];
    const frontend = new RunningDynamo([
      "frontend",
      "--http-host",
      "127.0.0.1",
      "--http-port",
      String(port),
      ...common,
    ]);
    const worker = mockerWorker("--speedup-ratio", "2", ...common);
    const client = new OpenAI({
      baseURL: `http://127.0.0.1:${port}/v1`,
      apiKey: "x",
      maxRetries: 0,
    });
    try {
      await worker.waitForLine(/Worker ready/, 30_000);
      await eventually(
        async () => {
          const models = await client.models.list().catch(() => undefined);
          return models?.data.length === 1 ? true : undefined;
        },
        30_000,
        "the model to be listed",
      );

      // A client that goes away mid-stream frees its slot on the worker: the worker's own
      // load report (event plane -> frontend /metrics) shows it running, then not.
      const running = async (): Promise<number | undefined> => {
        const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
        const m = /dynamo_frontend_worker_requests_running\{[^}]*\} (\d+)/.exec(text);
        return m === null ? undefined : Number(m[1]);
      };
      const abandon = new AbortController();
      const doomed = await client.chat.completions.create({
        model: MODEL,
        messages: [{ role: "user", content: "This will be cut short." }],
        max_tokens: 5000,
        stream: true,
        ignore_eos: true,
      } as OpenAI.ChatCompletionCreateParamsStreaming, { signal: abandon.signal });
      const doomedIt = doomed[Symbol.asyncIterator]();
      await doomedIt.next();
      await eventually(async () => (await running()) === 1 ? true : undefined, 10_000, "load 1");
      abandon.abort();
      await doomedIt.next().catch(() => undefined);
      await eventually(async () => (await running()) === 0 ? true : undefined, 10_000, "load 0");

      // About 300 decode passes at ~3 ms each: still running when SIGTERM arrives.
      const stream = await client.chat.completions.create({
        model: MODEL,
        messages: [{ role: "user", content: "Go on for a while." }],
        max_tokens: 300,
        stream: true,
        stream_options: { include_usage: true },
        ignore_eos: true, // a dynamo (and vLLM) extension
      } as OpenAI.ChatCompletionCreateParamsStreaming);
      const iterator = stream[Symbol.asyncIterator]();
      await iterator.next();
      worker.child.kill("SIGTERM");
      const status = await runDynamo(["status", "--json", ...common]);
      let tokens = 0;
      let usage: OpenAI.CompletionUsage | undefined;
      for (let r = await iterator.next(); !r.done; r = await iterator.next()) {
        if (r.value.choices[0]?.delta.content) tokens++;
        if (r.value.usage) usage = r.value.usage;
      }
      assert.equal(usage?.completion_tokens, 300, "the in-flight request finished in full");
      assert.ok(tokens >= 298);
      const code = await worker.stop("SIGTERM");
      assert.equal(code.code, 0, worker.lines.slice(-10).join("\n"));
      assert.ok(
        worker.lines.some((l) => /draining inflight=1/.test(l)),
        "SIGTERM arrived while the request was in flight",
      );
      // It left discovery as soon as SIGTERM arrived, while its request was still running.
      await eventually(
        async () => {
          const rows = JSON.parse((await runDynamo(["status", "--json", ...common])).stdout);
          return rows.length === 0 ? true : undefined;
        },
        5_000,
        "the worker to leave discovery",
      );
      assert.equal(status.code, 0);
      await assert.rejects(
        client.chat.completions.create({
          model: MODEL,
          messages: [{ role: "user", content: "x" }],
        }),
        (err: unknown) => err instanceof OpenAI.APIError && err.status === 503,
      );
    } finally {
      await worker.stop("SIGKILL");
      const code = await frontend.stop("SIGTERM");
      assert.equal(code.code, 0);
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "dynamo worker exits 0 when SIGTERM repeats while it shuts down",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "dynamo-worker-" });
    const worker = mockerWorker("--discovery-dir", dir);
    try {
      await worker.waitForLine(/Worker ready/, 30_000);
      // A supervisor that repeats itself: SIGTERM every millisecond until the worker is gone.
      // Each one must be absorbed, up to the moment it exits.
      let exited = false;
      const status = worker.child.status.finally(() => (exited = true));
      while (!exited) {
        try {
          worker.child.kill("SIGTERM");
        } catch {
          break; // already gone
        }
        await new Promise((r) => setTimeout(r, 1));
      }
      const { code, signal } = await status;
      assert.deepEqual(
        { code, signal },
        { code: 0, signal: null },
        worker.lines.slice(-10).join("\n"),
      );
    } finally {
      await worker.stop("SIGKILL");
      await Deno.remove(dir, { recursive: true });
    }
  },
});
