import assert from "node:assert/strict";
import { join } from "node:path";
import { DynamoError } from "../../errors/mod.ts";
import { findModelDir } from "./model_dir.ts";

Deno.test("findModelDir() takes --model-path, a model folder, or the Hugging Face cache's snapshot", async () => {
  const root = await Deno.makeTempDir();
  try {
    const local = join(root, "local");
    const snapshot = join(root, "hub", "models--Org--Tiny", "snapshots", "abc123");
    for (const dir of [local, snapshot]) {
      await Deno.mkdir(dir, { recursive: true });
      await Deno.writeTextFile(join(dir, "tokenizer.json"), "{}");
    }
    await Deno.writeTextFile(join(local, "config.json"), '{"max_position_embeddings": 4096}');
    await Deno.mkdir(join(root, "hub", "models--Org--Tiny", "refs"));
    await Deno.writeTextFile(join(root, "hub", "models--Org--Tiny", "refs", "main"), "abc123\n");
    const env = (name: string) => name === "HF_HUB_CACHE" ? join(root, "hub") : undefined;

    assert.deepEqual(await findModelDir("Org/Tiny", local, { env }), {
      dir: local,
      maxPositionEmbeddings: 4096,
    });
    assert.equal((await findModelDir(local, undefined, { env })).dir, local);
    assert.deepEqual(await findModelDir("Org/Tiny", undefined, { env }), {
      dir: snapshot,
      maxPositionEmbeddings: undefined,
    });
    await assert.rejects(
      findModelDir("Org/Missing", undefined, { env }),
      (err: unknown) =>
        err instanceof DynamoError && err.errorClass === "invalid_request" &&
        /Cannot find tokenizer\.json for model "Org\/Missing" .*pass --model-path/.test(
          err.message,
        ),
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
