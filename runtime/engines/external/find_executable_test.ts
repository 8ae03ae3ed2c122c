import assert from "node:assert/strict";
import { join } from "node:path";
import { DynamoError } from "../../errors/mod.ts";
import { findExecutable } from "./find_executable.ts";

Deno.test("findExecutable() takes the first executable match on PATH and says where it looked", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(join(dir, "a"));
    await Deno.mkdir(join(dir, "b"));
    await Deno.writeTextFile(join(dir, "a", "vllm"), "not executable");
    await Deno.writeTextFile(join(dir, "b", "vllm"), "#!/bin/sh\n");
    await Deno.chmod(join(dir, "b", "vllm"), 0o755);
    const path = `${dir}/a:${dir}/b`;
    assert.equal(findExecutable("vllm", { engine: "vllm", path }), join(dir, "b", "vllm"));
    assert.throws(
      () => findExecutable("sglang", { engine: "sglang", path }),
      (err: unknown) =>
        err instanceof DynamoError && err.errorClass === "invalid_request" &&
        err.message.includes(`executable "sglang" not found on PATH (searched ${path})`),
    );
    assert.throws(
      () => findExecutable(join(dir, "a", "vllm"), { engine: "vllm", flag: "--engine-bin" }),
      /--engine-bin .* is not an executable file/,
    );
    assert.equal(
      findExecutable("b/vllm", { engine: "vllm", cwd: dir }),
      join(dir, "b", "vllm"),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
