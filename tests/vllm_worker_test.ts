/**
 * `dynamo worker --engine vllm` end to end, against an executable named `vllm` on PATH that
 * behaves like vLLM's OpenAI server (the stand-in): a frontend and two such workers serve
 * chat completions through the OpenAI SDK, the engines' KV events drive KV-aware routing,
 * a killed engine is deregistered, restarted and registered again while the other worker
 * serves, and a SIGKILLed worker leaves no engine process behind.
 */
import assert from "node:assert/strict";
import OpenAI from "openai";
import { QWEN3_TOKENIZER_DIR } from "../runtime/llm/testing.ts";
import { eventually, freePort, MODEL, processAlive, RunningDynamo } from "./_harness.ts";
import { installFakeVllm, waitGroupGone } from "./vllm_fake.ts";

const PREFIX = "You are a careful assistant. " +
  Array.from({ length: 300 }, (_, i) => `rule${i}`).join(" ");

type Answer = OpenAI.ChatCompletion & {
  nvext?: { worker_id?: { decode_worker_id: number } };
  usage: OpenAI.CompletionUsage & { prompt_tokens_details?: { cached_tokens?: number } };
};

function ask(client: OpenAI, system: string, user: string, extra: object = {}): Promise<Answer> {
  return client.chat.completions.create({
    model: MODEL,
    messages: [{ role: "system", content: system }, { role: "user", content: user }],
    max_tokens: 6,
    ignore_eos: true,
    nvext: { extra_fields: ["worker_id"], ...extra },
  } as OpenAI.ChatCompletionCreateParamsNonStreaming) as Promise<Answer>;
}

/** A worker process and what its log says about it. */
class VllmWorker {
  readonly proc: RunningDynamo;
  instanceId = 0;

  constructor(args: string[], path: string) {
    this.proc = new RunningDynamo(["worker", ...args], { PATH: path });
  }

  async ready(timeoutMs: number): Promise<void> {
    const line = await this.proc.waitForLine(/Worker ready/, timeoutMs);
    this.instanceId = parseInt(/instance_id=([0-9a-f]+)/.exec(line)![1]!, 16);
  }

  /** The pid of the engine it started last (its process group id too). */
  get enginePid(): number {
    const started = this.proc.lines.filter((l) => /Engine started pid=\d+/.test(l)).at(-1)!;
    return Number(/pid=(\d+)/.exec(started)![1]);
  }

  get hex(): string {
    return this.instanceId.toString(16);
  }
}

Deno.test({
  name: "dynamo worker --engine vllm: KV-routed chat, engine restart, no orphans",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    // A restarted engine loads for 2.5 s: time to see requests go elsewhere meanwhile.
    const fake = await installFakeVllm({
      mockerFlags: ["--speedup-ratio", "20"],
      restartDelaySecs: 2.5,
    });
    const dir = await Deno.makeTempDir({ prefix: "dynamo-vllm-" });
    const port = freePort();
    const common = ["--discovery-dir", dir, "--namespace", "vllm-e2e"];
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
    const workerArgs = [
      "--engine",
      "vllm",
      "--model-path",
      QWEN3_TOKENIZER_DIR,
      "--model-name",
      MODEL,
      ...common,
      "--",
      "--gpu-memory-utilization",
      "0.85",
    ];
    const workers = [0, 1].map(() => new VllmWorker(workerArgs, fake.path));
    const client = new OpenAI({
      baseURL: `http://127.0.0.1:${port}/v1`,
      apiKey: "x",
      maxRetries: 0,
    });
    // Polled: a failed poll (a reused connection the server just closed) is retried.
    const instances = async (): Promise<number | undefined> => {
      try {
        return (await (await fetch(`http://127.0.0.1:${port}/health`)).json()).instances.length;
      } catch {
        return undefined;
      }
    };
    const registered = async (hex: string): Promise<boolean> =>
      (await Array.fromAsync(Deno.readDir(`${dir}/v1/instances`))).some((e) =>
        e.name.endsWith(`%2F${hex}`)
      );
    try {
      await Promise.all(workers.map((w) => w.ready(40_000)));
      await eventually(async () => await instances() === 2 || undefined, 20_000, "two workers");

      await t.step("chat completions, streaming and not, with true usage", async () => {
        const answer = await ask(client, "Be brief.", "Say hello.");
        assert.ok(answer.choices[0]!.message.content!.length > 0);
        assert.equal(answer.choices[0]!.finish_reason, "length");
        assert.equal(answer.usage.completion_tokens, 6);
        assert.ok(answer.usage.prompt_tokens > 5);
        assert.equal(answer.usage.total_tokens, answer.usage.prompt_tokens + 6);

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
        let finish: string | null | undefined;
        for await (const chunk of stream) {
          text += chunk.choices[0]?.delta.content ?? "";
          finish = chunk.choices[0]?.finish_reason ?? finish;
          usage = chunk.usage ?? usage;
        }
        assert.ok(text.length > 0);
        assert.equal(finish, "length");
        assert.equal(usage?.completion_tokens, 7);
        assert.equal(usage?.total_tokens, usage!.prompt_tokens + 7);
      });

      await t.step(
        "the engines' KV events route a repeated long prefix to one worker",
        async () => {
          const first = await ask(client, PREFIX, "First question?");
          const chosen = first.nvext!.worker_id!.decode_worker_id;
          // The engine's BlockStored events reach the frontend's index through the worker.
          await eventually(
            async () => {
              const text = await fetch(`http://127.0.0.1:${port}/metrics`)
                .then((r) => r.text()).catch(() => "");
              const m = /dynamo_router_index_blocks\{[^}]*\} (\d+)/.exec(text);
              return m !== null && Number(m[1]) >= 10 ? true : undefined;
            },
            10_000,
            "the prefix's blocks in the router's index",
          );
          for (const q of ["Second question?", "Third question?"]) {
            const answer = await ask(client, PREFIX, q);
            assert.equal(answer.nvext?.worker_id?.decode_worker_id, chosen);
            const cached = answer.usage.prompt_tokens_details?.cached_tokens ?? 0;
            assert.ok(cached >= 320, `cached ${cached} of ${answer.usage.prompt_tokens}`);
          }
        },
      );

      await t.step(
        "a killed engine: deregistered within 2 s, requests go to the other worker, back once ready",
        async () => {
          const [victim, survivor] = workers;
          const enginePid = victim!.enginePid;
          assert.ok(await registered(victim!.hex));
          // A stream the engine is serving when it dies fails (engine_error, not a hang).
          const doomed = await client.chat.completions.create({
            model: MODEL,
            messages: [{ role: "user", content: "Talk for a long time." }],
            max_tokens: 20_000,
            ignore_eos: true,
            stream: true,
            nvext: { backend_instance_id: victim!.instanceId },
          } as OpenAI.ChatCompletionCreateParamsStreaming);
          const chunks = doomed[Symbol.asyncIterator]();
          await chunks.next();
          const killedAt = Date.now();
          Deno.kill(enginePid, "SIGKILL");
          await assert.rejects(async () => {
            while (!(await chunks.next()).done) {
              // Tokens produced before the kill.
            }
          });
          await eventually(
            async () => !(await registered(victim!.hex)) || undefined,
            2_000,
            "the worker to deregister",
          );
          assert.ok(Date.now() - killedAt < 2_000);
          const left = new RegExp(`Worker left .*instance_id=${victim!.hex}\\b`);
          await frontend.waitForLine(left, 5_000);
          for (const q of ["While down 1?", "While down 2?", "While down 3?"]) {
            const answer = await ask(client, PREFIX, q);
            assert.equal(answer.nvext?.worker_id?.decode_worker_id, survivor!.instanceId);
          }
          await victim!.proc.waitForLine(/Engine ready again; worker registered/, 20_000);
          assert.notEqual(victim!.enginePid, enginePid);
          assert.ok(await registered(victim!.hex));
          // Routable again once the frontend has its endpoint and its card (a second join).
          const joined = new RegExp(`Worker joined .*instance_id=${victim!.hex}\\b`);
          await eventually(
            () => frontend.lines.filter((l) => joined.test(l)).length >= 2 || undefined,
            10_000,
            "the frontend to route to the worker again",
          );
          const pinned = await ask(client, "Be brief.", "Are you back?", {
            backend_instance_id: victim!.instanceId,
          });
          assert.equal(pinned.nvext?.worker_id?.decode_worker_id, victim!.instanceId);
          assert.equal(pinned.usage.completion_tokens, 6);
        },
      );

      await t.step("SIGKILL of a worker leaves no engine process behind", async () => {
        const worker = workers[1]!;
        const enginePid = worker.enginePid;
        assert.ok(processAlive(enginePid));
        await worker.proc.stop("SIGKILL");
        // The watchdog sees the worker's pipe close and kills the engine's process group.
        await waitGroupGone(enginePid, 15_000);
      });

      await t.step("SIGTERM stops a worker and its engine in order", async () => {
        const worker = workers[0]!;
        const enginePid = worker.enginePid;
        const status = await worker.proc.stop("SIGTERM");
        assert.equal(status.code, 0);
        assert.ok(!processAlive(enginePid));
        await waitGroupGone(enginePid, 5_000);
      });
    } finally {
      for (const w of workers) await w.proc.stop("SIGKILL", 5_000);
      await frontend.stop("SIGTERM");
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      await Deno.remove(fake.dir, { recursive: true }).catch(() => {});
    }
  },
});
