/**
 * `dynamo worker --engine vllm` when things are wrong: no executable, flags that do not fit
 * the engine, an engine that never becomes ready, an engine that keeps dying; and the
 * vLLM recipe.
 */
import assert from "node:assert/strict";
import { parseFlags } from "../cli/flags.ts";
import { workerCommand } from "../cli/worker.ts";
import { vllmWorkerEngine } from "../cli/worker_vllm.ts";
import { loadRecipe } from "../runtime/config/mod.ts";
import { QWEN3_TOKENIZER_DIR } from "../runtime/llm/testing.ts";
import { MODEL, ROOT, runDynamo, RunningDynamo } from "./_harness.ts";
import { installFakeVllm, waitGroupGone } from "./vllm_fake.ts";

const BASE = ["worker", "--engine", "vllm", "--model-path", QWEN3_TOKENIZER_DIR];

Deno.test("dynamo worker --engine vllm: a missing executable exits 2 naming it and the PATH searched", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dynamo-nopath-" });
  // The system folders stay (./dynamo itself needs sh and dirname); none has a vllm.
  const searched = `${dir}/bin:/nonexistent:/usr/bin:/bin`;
  const { code, stderr } = await runDynamo([...BASE, "--discovery-dir", dir], {
    env: { PATH: searched },
  });
  assert.equal(code, 2, stderr);
  assert.match(stderr, /Cannot start engine "vllm": executable "vllm" not found on PATH/);
  assert.ok(stderr.includes(`(searched ${searched})`), stderr);

  const explicit = await runDynamo([...BASE, "--engine-bin", `${dir}/vllm`]);
  assert.equal(explicit.code, 2, explicit.stderr);
  assert.ok(
    explicit.stderr.includes(`--engine-bin ${dir}/vllm is not an executable file`),
    explicit.stderr,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("dynamo worker: flags that do not fit the engine exit 2", async () => {
  const fake = await installFakeVllm();
  const cases: [string[], RegExp][] = [
    [
      [...BASE, "--engine-bin", fake.bin, "--speedup-ratio", "2"],
      /--speedup-ratio applies to --engine mocker only/,
    ],
    [
      [...BASE, "--engine-bin", fake.bin, "--", "--port", "9000"],
      /Cannot pass --port to vLLM after "--"/,
    ],
    [
      [...BASE, "--engine-bin", fake.bin, "--engine-args=--kv-events-config={}"],
      /Cannot pass --kv-events-config/,
    ],
    [
      ["worker", "--model-path", QWEN3_TOKENIZER_DIR, "--engine-bin", fake.bin],
      /--engine-bin applies to external engines/,
    ],
    [["worker", "--engine", "vllm", "--engine-bin", fake.bin], /Missing required flag --model/],
  ];
  for (const [args, expected] of cases) {
    const { code, stderr } = await runDynamo(args);
    assert.equal(code, 2, `${args.join(" ")}: ${stderr}`);
    assert.match(stderr, expected);
  }
  await Deno.remove(fake.dir, { recursive: true });
});

Deno.test("dynamo worker --engine vllm: an engine that never becomes ready fails in bounded time with its last lines", async () => {
  const stuck = await installFakeVllm({
    script: 'echo "Loading weights took forever" >&2\nexec sleep 30',
  });
  const dir = await Deno.makeTempDir({ prefix: "dynamo-stuck-" });
  const started = Date.now();
  const { code, stderr } = await runDynamo([
    ...BASE,
    "--discovery-dir",
    dir,
    "--engine-bin",
    stuck.bin,
    "--engine-ready-timeout-secs",
    "0.5",
    "--engine-max-restarts",
    "0",
  ]);
  assert.equal(code, 1, stderr);
  assert.ok(Date.now() - started < 15_000);
  assert.match(stderr, /did not become ready within 0\.5 s/);
  assert.match(stderr, /Loading weights took forever/);
  const pid = Number(/Engine started pid=(\d+)/.exec(stderr)![1]);
  await waitGroupGone(pid, 5_000);
  await Deno.remove(dir, { recursive: true });
  await Deno.remove(stuck.dir, { recursive: true });
});

Deno.test({
  name:
    "dynamo worker --engine vllm: an engine that dies more often than allowed stops the worker (exit 1)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const fake = await installFakeVllm();
    const dir = await Deno.makeTempDir({ prefix: "dynamo-giveup-" });
    const worker = new RunningDynamo([
      ...BASE,
      "--model-name",
      MODEL,
      "--discovery-dir",
      dir,
      "--engine-max-restarts",
      "0",
    ], { PATH: fake.path });
    try {
      await worker.waitForLine(/Worker ready/, 30_000);
      const started = worker.lines.find((l) => /Engine started pid=\d+/.test(l))!;
      Deno.kill(Number(/pid=(\d+)/.exec(started)![1]), "SIGKILL");
      const status = await worker.child.status;
      assert.equal(status.code, 1);
      await worker.waitForLine(/Engine keeps failing; giving up/, 1_000);
      await worker.waitForLine(/worker failed .*failed 1 time\(s\).*was killed by SIGKILL/, 1_000);
      const left = [...Deno.readDirSync(`${dir}/v1/instances`)];
      assert.deepEqual(left, []);
    } finally {
      await worker.stop("SIGKILL", 5_000);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      await Deno.remove(fake.dir, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test("recipes/vllm-agg.yaml is valid, and its workers build the documented vllm serve command line", async () => {
  const recipe = await loadRecipe(`${ROOT}recipes/vllm-agg.yaml`);
  assert.equal(recipe.frontend.router_mode, "kv");
  assert.equal(recipe.workers[0]!.engine, "vllm");
  assert.equal(recipe.workers[0]!.replicas, 2);
  const fake = await installFakeVllm();
  // As `dynamo serve` builds a worker's flags from the recipe.
  const argv = [
    "--engine",
    "vllm",
    "--model-name",
    recipe.model.name,
    "--model-path",
    recipe.model.path,
    ...Object.entries(recipe.workers[0]!.args).flatMap(([k, v]) => [`--${k}`, String(v)]),
    "--engine-bin",
    fake.bin,
  ];
  const args = parseFlags(workerCommand.flags, argv);
  const served = await vllmWorkerEngine(args, { loadIntervalMs: 500 });
  assert.equal(served.modelName, "Qwen/Qwen3-0.6B");
  assert.equal(served.tokenizerDir, recipe.model.path);
  const spec = served.engine.adapter.command({
    http: 8100,
    kv_events: 8101,
    kv_replay: 8102,
    nixl_side_channel: 8103,
  });
  assert.deepEqual(spec.argv, [
    fake.bin,
    "serve",
    "Qwen/Qwen3-0.6B",
    "--host",
    "127.0.0.1",
    "--port",
    "8100",
    "--served-model-name",
    "Qwen/Qwen3-0.6B",
    "--block-size",
    "16",
    "--enable-prompt-tokens-details",
    "--enable-prefix-caching",
    "--kv-events-config",
    '{"enable_kv_cache_events":true,"publisher":"zmq","endpoint":"tcp://*:8101","replay_endpoint":"tcp://*:8102","topic":"kv-events"}',
    "--gpu-memory-utilization",
    "0.4",
  ]);
  assert.equal(spec.env["VLLM_NIXL_SIDE_CHANNEL_PORT"], "8103");
  await Deno.remove(fake.dir, { recursive: true });
});
