/**
 * The vLLM adapter against an executable that behaves like `vllm serve` (the stand-in,
 * `dynamo mocker --api vllm`, started through a script named vllm): the engine conformance
 * suite, cancellation reaching the engine, a crash mid-stream, and an engine that never
 * becomes ready.
 */
import assert from "node:assert/strict";
import { runEngineConformance } from "../runtime/engines/conformance.ts";
import {
  createVllmEngine,
  type EngineAvailability,
  type ExternalEngine,
} from "../runtime/engines/mod.ts";
import { DynamoError } from "../runtime/errors/mod.ts";
import { QWEN3_TOKENIZER_DIR } from "../runtime/llm/testing.ts";
import { setLogLevel } from "../runtime/observability/mod.ts";
import type { EngineOutput, EngineRequest } from "../runtime/protocol/mod.ts";
import { MODEL } from "./_harness.ts";
import { installFakeVllm, processGroupMembers, waitGroupGone } from "./vllm_fake.ts";

setLogLevel("error");
const fake = await installFakeVllm();

function vllm(
  o: {
    bin?: string;
    output?: (line: string, pid: number) => void;
    maxRestarts?: number;
    readyMs?: number;
  } = {},
): ExternalEngine {
  return createVllmEngine({
    executable: o.bin ?? fake.bin,
    model: QWEN3_TOKENIZER_DIR,
    servedModelName: MODEL,
    blockSizeTokens: 16,
    enablePrefixCaching: true,
    engineFlags: ["--max-model-len", "4096"],
    extraArgs: ["--gpu-memory-utilization", "0.85"],
    loadIntervalMs: 50,
    output: (line, pid) => o.output?.(line, pid),
    policy: {
      readyTimeoutMs: o.readyMs ?? 20_000,
      readyPollMs: 50,
      maxRestarts: o.maxRestarts ?? 3,
      restartBackoffInitialMs: 100,
      stopTimeoutMs: 5_000,
    },
  });
}

runEngineConformance("ExternalEngine (vllm serve stand-in)", () => {
  const engine = vllm();
  return Promise.resolve({ engine, cleanup: () => engine.stop() });
}, { timeoutMs: 20_000 });

function request(id: string, tokens: number[], maxTokens: number): EngineRequest {
  return {
    request_id: id,
    model: MODEL,
    token_ids: tokens,
    stop_conditions: { max_tokens: maxTokens, min_tokens: 0, ignore_eos: true, stop_token_ids: [] },
    sampling_options: { temperature: null, top_p: null, top_k: null, seed: null },
    eos_token_ids: [],
  };
}

const PROMPT = Array.from({ length: 80 }, (_, i) => 1000 + i);

Deno.test("vLLM adapter: usage reports the engine's cached tokens; an abort reaches the engine", async () => {
  const lines: string[] = [];
  const engine = vllm({ output: (l) => lines.push(l) });
  try {
    const info = await engine.start();
    assert.equal(info.kind, "vllm");
    assert.equal(info.blockSizeTokens, 16);
    assert.equal(info.contextLengthTokens, 4096);
    const run = async (id: string): Promise<EngineOutput[]> => {
      const out: EngineOutput[] = [];
      for await (const o of engine.generate(request(id, PROMPT, 4), new AbortController().signal)) {
        out.push(o);
      }
      return out;
    };
    await run("first");
    const second = await run("second");
    const last = second.at(-1)!;
    assert.equal(last.finish_reason, "length");
    // 80 prompt tokens = 5 full blocks of 16, all cached by the first request; as vLLM does,
    // the last block is computed again (its last token must run), so 4 blocks are hits.
    assert.equal(last.completion_usage?.prompt_tokens_details?.cached_tokens, 64);
    assert.equal(last.completion_usage?.prompt_tokens, 80);

    const controller = new AbortController();
    const items: EngineOutput[] = [];
    for await (const o of engine.generate(request("doomed", PROMPT, 3000), controller.signal)) {
      items.push(o);
      if (items.length === 2) controller.abort();
    }
    assert.equal(items.at(-1)!.finish_reason, "cancelled");
    // The engine itself saw the disconnect and aborted the request (vLLM logs the same).
    await eventually(() => lines.some((l) => /Aborted request cmpl-doomed-0\./.test(l)), 5_000);
    await eventually(() => engine.load().num_requests_running === 0, 5_000);
  } finally {
    await engine.stop();
  }
});

Deno.test("vLLM adapter: an engine that dies mid-stream fails its request with engine_error and is restarted", async () => {
  const engine = vllm();
  const changes: EngineAvailability["state"][] = [];
  engine.onAvailability((c) => changes.push(c.state));
  try {
    await engine.start();
    const pid = engine.pid!;
    const stream = engine.generate(request("crash", PROMPT, 3000), new AbortController().signal);
    let seen = 0;
    await assert.rejects(
      async () => {
        for await (const _ of stream) {
          if (++seen === 1) Deno.kill(pid, "SIGKILL");
        }
      },
      (err: unknown) => err instanceof DynamoError && err.errorClass === "engine_error",
    );
    await eventually(() => changes.includes("down"), 5_000);
    // While it restarts, requests are refused at once as "never reached an engine".
    if (engine.pid === undefined) {
      assert.throws(
        () => engine.generate(request("early", PROMPT, 2), new AbortController().signal),
        (err: unknown) => err instanceof DynamoError && err.reason === "draining",
      );
    }
    await eventually(() => changes.at(-1) === "ready", 15_000);
    assert.deepEqual(changes, ["down", "ready"]);
    assert.notEqual(engine.pid, pid);
    const out: EngineOutput[] = [];
    for await (
      const o of engine.generate(request("after", PROMPT, 3), new AbortController().signal)
    ) {
      out.push(o);
    }
    assert.equal(out.at(-1)!.finish_reason, "length");
  } finally {
    await engine.stop();
  }
});

Deno.test("vLLM adapter: an engine that never becomes ready fails after the deadline with its last lines, and leaves nothing behind", async () => {
  const stuck = await installFakeVllm({
    script: 'echo "Loading safetensors checkpoint shards: 0% Completed"\nexec sleep 30',
  });
  // Each launch's pid (and process group), from its output, to check nothing survives.
  const pids = new Set<number>();
  const engine = vllm({
    bin: stuck.bin,
    maxRestarts: 1,
    readyMs: 400,
    output: (_line, pid) => pids.add(pid),
  });
  const before = Date.now();
  const err = await engine.start().catch((err) => err);
  try {
    assert.equal(pids.size, 2);
    assert.ok(err instanceof DynamoError, String(err));
    assert.equal(err.errorClass, "engine_error");
    assert.match(err.message, /failed 2 time\(s\)/);
    assert.match(err.message, /did not become ready within 0\.4 s/);
    assert.match(err.message, /Loading safetensors checkpoint shards/);
    assert.ok(Date.now() - before < 10_000);
    for (const line of engine.lastLines()) assert.match(line, /Loading safetensors/);
    for (const pid of pids) assert.deepEqual(processGroupMembers(pid), []);
  } finally {
    await engine.stop();
    for (const pid of pids) await waitGroupGone(pid, 5_000);
  }
});

async function eventually(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`Condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
