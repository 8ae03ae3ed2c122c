/**
 * The TensorRT-LLM adapter against an executable that behaves like `trtllm-serve` (the
 * stand-in, `dynamo mocker --api trtllm`, started through a script named trtllm-serve): the
 * engine conformance suite, the LLM API options the worker writes, usage with the engine's
 * cached tokens, cancellation reaching the engine, load that does not stay stale when idle,
 * and a crash mid-stream followed by a restart. The shared supervision itself is covered by
 * the vLLM tests.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { runEngineConformance } from "../runtime/engines/conformance.ts";
import {
  createTrtllmEngine,
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
const fake = await installFakeEngine("trtllm");
globalThis.addEventListener("unload", () => Deno.removeSync(fake.dir, { recursive: true }));

function trtllm(
  o: { output?: (line: string, pid: number) => void; configDir?: string } = {},
): ExternalEngine {
  return createTrtllmEngine({
    executable: fake.bin,
    model: QWEN3_TOKENIZER_DIR,
    blockSizeTokens: 16,
    enablePrefixCaching: true,
    kvEvents: true,
    configDir: o.configDir ?? fake.dir,
    baseLlmApiOptions: { kv_cache_config: { free_gpu_memory_fraction: 0.85 }, max_batch_size: 64 },
    engineFlags: ["--max_seq_len", "4096"],
    extraArgs: ["--trust_remote_code"],
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
runEngineConformance("ExternalEngine (trtllm-serve stand-in)", () => {
  shared ??= trtllm();
  return Promise.resolve({ engine: shared, cleanup: () => Promise.resolve() });
}, { timeoutMs: 20_000 });
Deno.test("TensorRT-LLM conformance engine stops", async () => {
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

Deno.test("TensorRT-LLM adapter: its options file, the card from the iteration gauges, usage with cached tokens, an abort reaching the engine, idle load", async () => {
  const lines: string[] = [];
  const configDir = await Deno.makeTempDir({ prefix: "dynamo-trtllm-test-" });
  const engine = trtllm({ output: (l) => lines.push(l), configDir });
  try {
    const info = await engine.start();
    const options = parseYaml(
      await Deno.readTextFile(join(configDir, "extra_llm_api_options.yaml")),
    ) as Record<string, Record<string, unknown>>;
    // The user's options stay; the worker's are set over them.
    assert.equal(options["max_batch_size"], 64);
    assert.equal(options["kv_cache_config"]!["free_gpu_memory_fraction"], 0.85);
    assert.equal(options["kv_cache_config"]!["tokens_per_block"], 16);
    assert.equal(options["kv_cache_config"]!["enable_block_reuse"], true);
    assert.equal(options["enable_iter_perf_stats"], true);
    assert.equal(options["return_perf_metrics"], true);
    assert.match(
      JSON.stringify(options["kv_cache_config"]!["kv_events_config"]),
      /"enable_kv_cache_events":true,"publisher":"zmq","endpoint":"tcp:\/\/\*:\d+","topic":"kv-events"/,
    );
    assert.equal(info.kind, "trtllm");
    assert.equal(info.blockSizeTokens, 16);
    assert.equal(info.contextLengthTokens, 4096);
    assert.equal(info.totalKvBlocks, 16384, "trtllm_kv_cache_max_blocks");
    assert.equal(info.maxNumSeqs, 2048, "--max_batch_size is not on the command line");

    await collect(engine, request("first", PROMPT, 5));
    const second = await collect(engine, request("second", PROMPT, 4));
    const last = second.at(-1)!;
    assert.equal(last.finish_reason, "length");
    assert.equal(second.flatMap((o) => o.token_ids).length, 4);
    assert.equal(last.completion_usage?.prompt_tokens_details?.cached_tokens, 64);
    assert.equal(last.completion_usage?.completion_tokens, 4);

    const controller = new AbortController();
    const items: EngineOutput[] = [];
    for await (const o of engine.generate(request("doomed", PROMPT, 3000), controller.signal)) {
      items.push(o);
      if (items.length === 2) {
        // The running request shows in the iteration gauges the worker scrapes.
        await eventually(
          () => engine.load().num_requests_running === 1 || undefined,
          5_000,
          "a running request in the gauges",
        );
        assert.ok(engine.load().kv_used_blocks >= 5);
        controller.abort();
      }
    }
    assert.equal(items.at(-1)!.finish_reason, "cancelled");
    await eventually(
      () => lines.some((l) => /is disconnected, abort cmpl-/.test(l)) || undefined,
      5_000,
      "the engine's abort",
    );
    // Idle, the gauges keep their last iteration; with nothing in flight, nothing runs.
    assert.equal(engine.load().num_requests_running, 0);
    assert.equal(engine.load().num_requests_waiting, 0);
  } finally {
    await engine.stop();
    await Deno.remove(configDir, { recursive: true });
  }
});

Deno.test("TensorRT-LLM adapter: an engine that dies mid-stream fails its request with engine_error and is restarted", async () => {
  const engine = trtllm();
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
