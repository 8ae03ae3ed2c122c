import assert from "node:assert/strict";
import { IncrementalDetokenizer } from "./incremental_detokenizer.ts";
import { qwen3Tokenizer } from "./testing.ts";

Deno.test("IncrementalDetokenizer.push() never emits half of a multi-byte character", async () => {
  const tok = await qwen3Tokenizer();
  const text = "Emoji 🎉 and 你好, 🇫🇷 flags ü — done.";
  const ids = tok.encode(text);
  const detok = new IncrementalDetokenizer(tok);
  const deltas: string[] = [];
  for (const id of ids) deltas.push(detok.push([id]));
  deltas.push(detok.flush());
  for (const d of deltas) assert.ok(!d.includes("\uFFFD"), `delta ${JSON.stringify(d)}`);
  assert.equal(deltas.join(""), text);
  // The emoji spans several tokens, so at least one push returned "" while waiting for it.
  assert.ok(deltas.some((d) => d === ""));
});

Deno.test("IncrementalDetokenizer.push() skips special tokens", async () => {
  const tok = await qwen3Tokenizer();
  const detok = new IncrementalDetokenizer(tok);
  const out = detok.push(tok.encode("Hi there")) + detok.push([151645]) + detok.flush();
  assert.equal(out, "Hi there");
});

Deno.test("IncrementalDetokenizer.push() matches a one-shot decode on a long stream", async () => {
  const tok = await qwen3Tokenizer();
  const text = "The quick brown fox 🦊 jumps over the lazy dog. ".repeat(80);
  const ids = tok.encode(text);
  const detok = new IncrementalDetokenizer(tok);
  let out = "";
  for (let i = 0; i < ids.length; i += 3) out += detok.push(ids.slice(i, i + 3));
  out += detok.flush();
  assert.equal(out, text);
});
