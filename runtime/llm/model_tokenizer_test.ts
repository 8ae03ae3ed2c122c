import assert from "node:assert/strict";
import { DynamoError } from "../errors/mod.ts";
import { ModelTokenizer } from "./model_tokenizer.ts";
import { qwen3Tokenizer } from "./testing.ts";

Deno.test("ModelTokenizer.load() reads Qwen3's EOS token from tokenizer_config.json", async () => {
  const tok = await qwen3Tokenizer();
  assert.deepEqual([...tok.eosTokenIds], [151645]);
  assert.ok(tok.specialTokenIds.has(151645));
  assert.ok(tok.hasChatTemplate);
});

Deno.test("ModelTokenizer.encode() and decode() round-trip text", async () => {
  const tok = await qwen3Tokenizer();
  const ids = tok.encode("Hello world, 你好!");
  assert.deepEqual(ids, [9707, 1879, 11, 220, 108386, 0]);
  assert.equal(tok.decode(ids), "Hello world, 你好!");
  assert.equal(tok.decode([151645, 9707]), "Hello");
});

Deno.test("ModelTokenizer.renderChat() applies Qwen3's template with a generation prompt", async () => {
  const tok = await qwen3Tokenizer();
  const text = tok.renderChat([
    { role: "system", content: "Be brief." },
    { role: "user", content: "hi" },
  ]);
  assert.equal(
    text,
    "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
  );
  const noThink = tok.renderChat([{ role: "user", content: "hi" }], {
    kwargs: { enable_thinking: false },
  });
  assert.ok(noThink.endsWith("<|im_start|>assistant\n<think>\n\n</think>\n\n"), noThink);
});

Deno.test("ModelTokenizer.load() names the missing file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assert.rejects(ModelTokenizer.load(dir), (err: unknown) => {
      assert.ok(err instanceof DynamoError);
      assert.equal(err.reason, "tokenizer_missing");
      assert.match(err.message, /tokenizer\.json/);
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
