/**
 * The SGLang adapter against an executable that behaves like SGLang's server (the stand-in,
 * `dynamo mocker --api sglang`, started through a script named sglang): the engine
 * conformance suite, usage with the engine's cached tokens, cancellation reaching the
 * engine, and a crash mid-stream followed by a restart. The shared supervision itself is
 * covered by the vLLM tests.
 */
import assert from "node:assert/strict";
import { runEngineConformance } from "../runtime/engines/conformance.ts";
import {
  createSglangEngine,
  type EngineAvailability,
  type ExternalEngine,
} from "../runtime/engines/mod.ts";
import { DynamoError } from "../runtime/errors/mod.ts";
import { QWEN3_TOKENIZER_DIR } from "../runtime/llm/testing.ts";
import { setLogLevel } from "../runtime/observability/mod.ts";
import type { EngineOutput, EngineRequest } from "../runtime/protocol/mod.ts";
import { eventually, MODEL } from "./_harness.ts";
import { installFakeEngine } from "./sglang_trtllm_fake.ts";

setLogLevel("error");
const fake = await installFakeEngine("sglang");
globalThis.addEventListener("unload", () => Deno.removeSync(fake.dir, { recursive: true }));

function sglang(
  o: { output?: (line: string, pid: number) => void; extraArgs?: string[] } = {},
): ExternalEngine {
  return createSglangEngine({
    executable: fake.bin,
    model: QWEN3_TOKENIZER_DIR,
    servedModelName: MODEL,
    pageSizeTokens: 16,
    enablePrefixCaching: true,
    kvEvents: true,
    engineFlags: ["--context-length", "4096"],
    extraArgs: o.extraArgs ?? ["--mem-fraction-static", "0.85"],
    loadIntervalMs: 50,
    output: (line, pid) => o.output?.(line, pid),
    policy: {
      readyTimeoutMs: 20_000,
      readyPollMs: 50,
      restartBackoffInitialMs: 100,
      stopTimeoutMs: 5_000,
    },
  });
}

// One engine process serves the whole suite (each case starts it, which is idempotent): the
// cases run in order and the last one stops it. Fresh engines are the vLLM suite's job.
let shared: ExternalEngine | undefined;
runEngineConformance("ExternalEngine (SGLang stand-in)", () => {
  shared ??= sglang();
  return Promise.resolve({ engine: shared, cleanup: () => Promise.resolve() });
}, { timeoutMs: 20_000 });
Deno.test("SGLang conformance engine stops", async () => {
  await shared?.stop();
});

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

async function collect(engine: ExternalEngine, req: EngineRequest): Promise<EngineOutput[]> {
  const out: EngineOutput[] = [];
  for await (const o of engine.generate(req, new AbortController().signal)) out.push(o);
  return out;
}

const PROMPT = Array.from({ length: 80 }, (_, i) => 1000 + i);

Deno.test("SGLang adapter: the card comes from the server info, usage carries cached tokens, streams of either form, an abort reaches the engine", async () => {
  const lines: string[] = [];
  const engine = sglang({
    output: (l) => lines.push(l),
    extraArgs: ["--incremental-streaming-output"],
  });
  try {
    const info = await engine.start();
    assert.equal(info.kind, "sglang");
    assert.equal(info.blockSizeTokens, 16);
    assert.equal(info.contextLengthTokens, 4096);
    assert.equal(info.totalKvBlocks, 16384, "max_total_num_tokens / page size");
    assert.equal(info.maxNumBatchedTokens, 8192, "chunked_prefill_size");
    const first = await collect(engine, request("first", PROMPT, 5));
    assert.deepEqual(first.flatMap((o) => o.token_ids).length, 5);
    const second = await collect(engine, request("second", PROMPT, 4));
    const last = second.at(-1)!;
    assert.equal(last.finish_reason, "length");
    assert.equal(second.flatMap((o) => o.token_ids).length, 4);
    // 80 prompt tokens = 5 pages of 16, all cached by the first request; the last one is
    // computed again (its last token must run), so 4 pages are hits.
    assert.equal(last.completion_usage?.prompt_tokens_details?.cached_tokens, 64);
    assert.equal(last.completion_usage?.prompt_tokens, 80);
    assert.equal(last.completion_usage?.completion_tokens, 4);

    const controller = new AbortController();
    const items: EngineOutput[] = [];
    for await (const o of engine.generate(request("doomed", PROMPT, 3000), controller.signal)) {
      items.push(o);
      if (items.length === 2) controller.abort();
    }
    assert.equal(items.at(-1)!.finish_reason, "cancelled");
    await eventually(
      () => lines.some((l) => /Abort request rid=doomed/.test(l)) || undefined,
      5_000,
      "the engine's abort",
    );
    await eventually(() => engine.load().num_requests_running === 0 || undefined, 5_000, "idle");
  } finally {
    await engine.stop();
  }
});

Deno.test("SGLang adapter: an engine that dies mid-stream fails its request with engine_error and is restarted", async () => {
  const engine = sglang();
  const changes: EngineAvailability["state"][] = [];
  engine.onAvailability((c) => changes.push(c.state));
  try {
    await engine.start();
    const pid = engine.pid!;
    let seen = 0;
    await assert.rejects(
      async () => {
        for await (
          const _ of engine.generate(request("crash", PROMPT, 3000), new AbortController().signal)
        ) {
          if (++seen === 1) Deno.kill(pid, "SIGKILL");
        }
      },
      (err: unknown) => err instanceof DynamoError && err.errorClass === "engine_error",
    );
    await eventually(() => changes.at(-1) === "ready" || undefined, 15_000, "a restart");
    assert.deepEqual(changes, ["down", "ready"]);
    assert.notEqual(engine.pid, pid);
    const after = await collect(engine, request("after", PROMPT, 3));
    assert.equal(after.at(-1)!.finish_reason, "length");
  } finally {
    await engine.stop();
  }
});
