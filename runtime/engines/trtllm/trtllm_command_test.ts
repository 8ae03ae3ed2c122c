import assert from "node:assert/strict";
import { parse as parseYaml } from "yaml";
import type { EngineRequest } from "../../protocol/mod.ts";
import { trtllmCompletionBody } from "./trtllm_client.ts";
import {
  checkTrtllmExtraArgs,
  splitTrtllmOptionsFile,
  trtllmCommand,
  type TrtllmLaunchOptions,
} from "./trtllm_command.ts";

const OPTIONS: TrtllmLaunchOptions = {
  executable: "/opt/bin/trtllm-serve",
  model: "Qwen/Qwen3-0.6B",
  blockSizeTokens: 64,
  enablePrefixCaching: true,
  kvEvents: true,
  kvCacheMaxTokens: 64_000,
  configDir: "/tmp/cfg",
  baseLlmApiOptions: {
    max_batch_size: 32,
    kv_cache_config: { free_gpu_memory_fraction: 0.7, enable_block_reuse: false },
  },
  engineFlags: ["--max_seq_len", "8192"],
  extraArgs: ["--backend", "pytorch"],
};

Deno.test("trtllmCommand() writes the LLM API options the worker needs over the user's, and names the file", () => {
  const spec = trtllmCommand(OPTIONS, { http: 8100, kv_events: 8101 });
  assert.deepEqual(spec.argv, [
    "/opt/bin/trtllm-serve",
    "Qwen/Qwen3-0.6B",
    "--host",
    "127.0.0.1",
    "--port",
    "8100",
    "--extra_llm_api_options",
    "/tmp/cfg/extra_llm_api_options.yaml",
    "--max_seq_len",
    "8192",
    "--backend",
    "pytorch",
  ]);
  const written = parseYaml(spec.files!["/tmp/cfg/extra_llm_api_options.yaml"]!);
  assert.deepEqual(written, {
    max_batch_size: 32,
    enable_iter_perf_stats: true,
    return_perf_metrics: true,
    kv_cache_config: {
      free_gpu_memory_fraction: 0.7,
      enable_block_reuse: true,
      tokens_per_block: 64,
      max_tokens: 64_000,
      kv_events_config: {
        enable_kv_cache_events: true,
        publisher: "zmq",
        endpoint: "tcp://*:8101",
        topic: "kv-events",
      },
    },
  });
  const off = parseYaml(
    trtllmCommand({ ...OPTIONS, kvEvents: false }, { http: 1, kv_events: 2 })
      .files!["/tmp/cfg/extra_llm_api_options.yaml"]!,
  );
  assert.equal(off.kv_cache_config.kv_events_config, undefined);
});

Deno.test("splitTrtllmOptionsFile() takes the user's options file out of the extra arguments", () => {
  assert.deepEqual(splitTrtllmOptionsFile(["--config", "a.yaml", "--backend", "pytorch"]), {
    extraArgs: ["--backend", "pytorch"],
    optionsFile: "a.yaml",
  });
  assert.deepEqual(splitTrtllmOptionsFile(["--extra_llm_api_options=b.yaml"]), {
    extraArgs: [],
    optionsFile: "b.yaml",
  });
  assert.throws(() => splitTrtllmOptionsFile(["--config"]), /Missing the file after --config/);
  assert.throws(() => checkTrtllmExtraArgs(["--host", "0.0.0.0"]), /Cannot pass --host/);
});

Deno.test("trtllmCompletionBody() sends only fields TensorRT-LLM's strict request model declares", () => {
  const request: EngineRequest = {
    request_id: "r",
    model: "m",
    token_ids: [4, 5],
    stop_conditions: { max_tokens: 3, min_tokens: 0, ignore_eos: false, stop_token_ids: [] },
    sampling_options: { temperature: null, top_p: 0.9, top_k: null, seed: 1 },
    eos_token_ids: [],
  };
  assert.deepEqual(trtllmCompletionBody(request, "models"), {
    model: "models",
    prompt: [4, 5],
    max_tokens: 3,
    stream: true,
    stream_options: { include_usage: true },
    detokenize: false,
    top_p: 0.9,
    seed: 1,
  });
});
