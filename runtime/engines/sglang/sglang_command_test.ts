import assert from "node:assert/strict";
import { checkSglangExtraArgs, sglangCommand } from "./sglang_command.ts";

Deno.test("sglangCommand() runs sglang serve, or SGLang's module under a Python interpreter", () => {
  const options = {
    executable: "/opt/bin/sglang",
    model: "Qwen/Qwen3-0.6B",
    servedModelName: "qwen",
    pageSizeTokens: 32,
    enablePrefixCaching: true,
    kvEvents: true,
    engineFlags: ["--context-length", "8192"],
    extraArgs: ["--tp-size", "2"],
  };
  const spec = sglangCommand(options, { http: 1, kv_events: 2, kv_replay: 3 });
  assert.deepEqual(spec.argv, [
    "/opt/bin/sglang",
    "serve",
    "--model-path",
    "Qwen/Qwen3-0.6B",
    "--host",
    "127.0.0.1",
    "--port",
    "1",
    "--served-model-name",
    "qwen",
    "--page-size",
    "32",
    "--enable-metrics",
    "--kv-events-config",
    '{"publisher":"zmq","endpoint":"tcp://*:2","replay_endpoint":"tcp://*:3","topic":"kv-events"}',
    "--context-length",
    "8192",
    "--tp-size",
    "2",
  ]);
  const python = sglangCommand({ ...options, executable: "/usr/bin/python3.12", kvEvents: false }, {
    http: 1,
  });
  assert.deepEqual(python.argv.slice(0, 4), [
    "/usr/bin/python3.12",
    "-m",
    "sglang.launch_server",
    "--model-path",
  ]);
  assert.ok(!python.argv.includes("--kv-events-config"));
  const noCache = sglangCommand({ ...options, enablePrefixCaching: false }, { http: 1 });
  assert.ok(noCache.argv.includes("--disable-radix-cache"));
  assert.ok(!noCache.argv.includes("--kv-events-config"));
  assert.throws(() => checkSglangExtraArgs(["--port=9"]), /Cannot pass --port to SGLang/);
  checkSglangExtraArgs(["--tp-size", "2"]);
});
