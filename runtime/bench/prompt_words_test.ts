import assert from "node:assert/strict";
import { qwen3Tokenizer } from "../llm/testing.ts";
import { parseDistribution, syntheticWorkload } from "../workload/mod.ts";
import { Conversation } from "./conversation.ts";
import { singleTokenWords } from "./prompt_words.ts";

Deno.test("singleTokenWords() finds words that the tokenizer encodes as one token each", async () => {
  const tok = await qwen3Tokenizer();
  const words = singleTokenWords(tok, { maxWords: 2000 });
  assert.equal(words.length, 2000);
  assert.equal(new Set(words).size, 2000);
  for (const id of words.slice(0, 50)) {
    const text = tok.decode([id]);
    assert.match(text, /^ [a-z]{3,12}$/);
    assert.deepEqual(tok.encode(text, { addSpecialTokens: false }), [id]);
  }
  assert.throws(
    () => singleTokenWords(tok, { maxIdsScanned: 300, source: "tiny" }),
    /Cannot build exact-length prompts with the tokenizer tiny/,
  );
});

Deno.test("synthetic prompts from one-token words are exactly --isl tokens, as ids and as text", async () => {
  const tok = await qwen3Tokenizer();
  const vocabulary = singleTokenWords(tok);
  const w = syntheticWorkload({
    sessions: 40,
    isl: parseDistribution("uniform:1:700", "--isl"),
    osl: parseDistribution("16", "--osl"),
    sharedPrefixRatio: 0.3,
    prefixGroups: 3,
    turns: 1,
    turnIsl: parseDistribution("8", "--turn-isl"),
    interTurnDelayMs: 0,
    arrival: { kind: "closed", concurrency: 1 },
    vocabulary,
    seed: 7,
  }, "test");
  const overheads = new Set<number>();
  for (const s of w.sessions) {
    const ids = s.turns[0]!.newTokens;
    const text = tok.decode(ids);
    // The text the chat endpoint sends encodes back to the very same ids...
    assert.deepEqual(tok.encode(text, { addSpecialTokens: false }), ids);
    // ...and inside the chat template it adds exactly its own length.
    const templated = tok.encode(tok.renderChat([{ role: "user", content: text }]), {
      addSpecialTokens: false,
    });
    overheads.add(templated.length - ids.length);
  }
  assert.equal(overheads.size, 1);
});

Deno.test("Conversation.body() sends token ids for completions, with the answers in later turns", async () => {
  const tok = await qwen3Tokenizer();
  const conv = new Conversation(tok, {
    model: "m",
    endpoint: "completions",
    ignoreEos: true,
    askWorkerId: true,
    extraBody: { temperature: 0 },
  });
  const first = JSON.parse(conv.body({ newTokens: [1, 2, 3], maxTokens: 5, delayMs: 0 }));
  assert.deepEqual(first, {
    model: "m",
    max_tokens: 5,
    stream: true,
    stream_options: { include_usage: true },
    ignore_eos: true,
    nvext: { extra_fields: ["worker_id"] },
    prompt: [1, 2, 3],
    temperature: 0,
  });
  assert.equal(conv.lastPromptTokens, 3);
  conv.answer(" hello world");
  const answerIds = tok.encode(" hello world", { addSpecialTokens: false });
  const second = JSON.parse(conv.body({ newTokens: [9], maxTokens: 2, delayMs: 10 }));
  assert.deepEqual(second.prompt, [1, 2, 3, ...answerIds, 9]);
  assert.equal(conv.lastPromptTokens, 4 + answerIds.length);
});

Deno.test("Conversation.body() sends chat messages with each answer as an assistant turn", async () => {
  const tok = await qwen3Tokenizer();
  const words = singleTokenWords(tok, { maxWords: 300 });
  const conv = new Conversation(tok, {
    model: "m",
    endpoint: "chat",
    ignoreEos: false,
    askWorkerId: false,
    extraBody: {},
  });
  const first = JSON.parse(conv.body({ newTokens: words.slice(0, 4), maxTokens: 3, delayMs: 0 }));
  assert.equal(first.ignore_eos, undefined);
  assert.equal(first.nvext, undefined);
  assert.deepEqual(first.messages, [{ role: "user", content: tok.decode(words.slice(0, 4)) }]);
  conv.answer("Sure thing");
  const second = JSON.parse(conv.body({ newTokens: words.slice(4, 6), maxTokens: 3, delayMs: 0 }));
  assert.deepEqual(second.messages.map((m: { role: string }) => m.role), [
    "user",
    "assistant",
    "user",
  ]);
  assert.equal(second.messages[1].content, "Sure thing");
});
