import assert from "node:assert/strict";
import { DynamoError } from "../../errors/mod.ts";
import { SeededRng } from "../../util/mod.ts";
import { MockerCore } from "./mocker_core.ts";
import type { MockerOptionsInput } from "./mocker_options.ts";
import {
  buildMockerVocabulary,
  geometricLength,
  OutputTokenGenerator,
  validateVocabulary,
} from "./output_tokens.ts";
import {
  drain,
  TEST_EOS,
  TEST_VOCABULARY,
  testRequest,
  type TestRequestOptions,
} from "./_test_helpers.ts";

function outputOf(
  prompt: number[],
  request: TestRequestOptions,
  options: MockerOptionsInput = {},
): { tokens: number[]; finish?: string; completion?: number } {
  const core = new MockerCore({ options, vocabulary: TEST_VOCABULARY });
  core.addRequest(testRequest("r", prompt, request), 0);
  const r = drain(core).results.get("r")!;
  return {
    tokens: r.tokenIds,
    finish: r.final?.finishReason,
    completion: r.final?.usage?.completion_tokens,
  };
}

const PROMPT = [11, 12, 13, 14, 15];

Deno.test("OutputTokenGenerator gives the same tokens for the same seed", () => {
  const a = outputOf(PROMPT, { seed: 42, maxTokens: 40 }, { seed: 1 });
  const b = outputOf(PROMPT, { seed: 42, maxTokens: 40 }, { seed: 2 });
  const c = outputOf(PROMPT, { seed: 43, maxTokens: 40 }, { seed: 1 });
  assert.deepEqual(a.tokens, b.tokens);
  assert.equal(a.tokens.length, 40);
  assert.notDeepEqual(a.tokens, c.tokens);
});

Deno.test("OutputTokenGenerator output is a function of the prompt at temperature 0", () => {
  const a = outputOf(PROMPT, { temperature: 0, maxTokens: 40 }, { seed: 1 });
  const b = outputOf(PROMPT, { temperature: 0, maxTokens: 40 }, { seed: 2 });
  const c = outputOf([11, 12, 13, 14, 16], { temperature: 0, maxTokens: 40 }, { seed: 1 });
  assert.deepEqual(a.tokens, b.tokens);
  assert.notDeepEqual(a.tokens, c.tokens);
});

Deno.test("OutputTokenGenerator draws unseeded sampled output from the engine's seed", () => {
  const a = outputOf(PROMPT, { temperature: 0.7, maxTokens: 40 }, { seed: 1 });
  const b = outputOf(PROMPT, { temperature: 0.7, maxTokens: 40 }, { seed: 1 });
  const c = outputOf(PROMPT, { temperature: 0.7, maxTokens: 40 }, { seed: 2 });
  assert.deepEqual(a.tokens, b.tokens);
  assert.notDeepEqual(a.tokens, c.tokens);
});

Deno.test("OutputTokenGenerator never ends with EOS before min_tokens", () => {
  // A mean length of 1 would end at the first token.
  const out = outputOf(PROMPT, { ignoreEos: false, minTokens: 5, maxTokens: 50 }, {
    meanOutputTokens: 1,
  });
  assert.equal(out.finish, "stop");
  assert.equal(out.tokens.length, 6);
  assert.equal(out.tokens[5], TEST_EOS);
  assert.ok(!out.tokens.slice(0, 5).includes(TEST_EOS));
  assert.equal(out.completion, 6);
});

Deno.test("OutputTokenGenerator ends naturally with EOS at a geometric length", () => {
  const out = outputOf(PROMPT, { ignoreEos: false, seed: 7, maxTokens: 100_000 });
  assert.equal(out.finish, "stop");
  assert.equal(out.tokens[out.tokens.length - 1], TEST_EOS);
  assert.equal(out.tokens.indexOf(TEST_EOS), out.tokens.length - 1);
});

Deno.test("OutputTokenGenerator with ignore_eos reaches max_tokens", () => {
  const out = outputOf(PROMPT, { ignoreEos: true, maxTokens: 300 }, { meanOutputTokens: 1 });
  assert.equal(out.finish, "length");
  assert.equal(out.tokens.length, 300);
  assert.ok(!out.tokens.includes(TEST_EOS));
});

Deno.test("OutputTokenGenerator stops on a stop token id only after min_tokens", () => {
  const vocabulary = { wordTokenIds: [[7]], eosTokenIds: [TEST_EOS] };
  const core = new MockerCore({ vocabulary });
  core.addRequest(testRequest("r", PROMPT, { stopTokenIds: [7], minTokens: 2, maxTokens: 10 }), 0);
  const r = drain(core).results.get("r")!;
  assert.deepEqual(r.tokenIds, [7, 7, 7]);
  assert.equal(r.final?.finishReason, "stop");
});

Deno.test("geometricLength() has the requested mean", () => {
  const rng = new SeededRng(3);
  let sum = 0;
  const n = 20_000;
  for (let i = 0; i < n; i++) sum += geometricLength(rng, 128);
  const mean = sum / n;
  assert.ok(Math.abs(mean - 128) < 5, `mean ${mean}`);
  assert.equal(geometricLength(rng, 1), 1);
});

/** A word-level tokenizer: every distinct piece of text gets the next id. */
function wordTokenizer(): {
  encode: (text: string) => number[];
  decode: (ids: number[]) => string;
} {
  const ids = new Map<string, number>();
  const texts: string[] = [];
  const idOf = (piece: string): number => {
    let id = ids.get(piece);
    if (id === undefined) {
      id = texts.length + 10;
      ids.set(piece, id);
      texts[id] = piece;
    }
    return id;
  };
  return {
    // Words of seven letters or more take three tokens, so the vocabulary must drop them.
    encode: (text) =>
      text.length > 7
        ? [idOf(text.slice(0, 3)), idOf(text.slice(3, 6)), idOf(text.slice(6))]
        : [idOf(text)],
    decode: (tokenIds) => tokenIds.map((id) => texts[id] ?? "<eos>").join(""),
  };
}

Deno.test("buildMockerVocabulary() keeps only words of at most two tokens", () => {
  const tok = wordTokenizer();
  const vocab = buildMockerVocabulary(tok.encode, [0]);
  assert.ok(vocab.wordTokenIds.length >= 200, `${vocab.wordTokenIds.length} words`);
  assert.ok(vocab.wordTokenIds.every((ids) => ids.length >= 1 && ids.length <= 2));
  const words = vocab.wordTokenIds.map((ids) => tok.decode([...ids]));
  assert.ok(words.includes(" the"));
  assert.ok(words.includes(" people"));
  assert.ok(!words.includes(" sentence"));
  assert.ok(!words.some((w) => w.length > 7));
  assert.deepEqual(vocab.eosTokenIds, [0]);
  assert.equal(tok.decode([...vocab.sentenceEndTokenIds!]), ".");
  validateVocabulary(vocab);
});

Deno.test("buildMockerVocabulary() output decodes to readable sentences", () => {
  const tok = wordTokenizer();
  const vocab = buildMockerVocabulary(tok.encode, [0]);
  const gen = new OutputTokenGenerator(vocab, 99, {
    meanOutputTokens: 128,
    eosTokenId: null,
    minTokens: 0,
  });
  const text = tok.decode(Array.from({ length: 120 }, () => gen.next()));
  assert.match(text, /^( [a-z]+){6,15}\. [A-Z][a-z]*( [a-z]+)+/);
  const sentences = text.split(". ").slice(1, -1);
  assert.ok(sentences.length >= 2);
  for (const s of sentences) {
    const words = s.split(" ").length;
    assert.ok(words >= 6 && words <= 15, `"${s}" has ${words} words`);
  }
});

Deno.test("buildMockerVocabulary() fails when no word is short enough", () => {
  assert.throws(
    () => buildMockerVocabulary(() => [1, 2, 3], [0]),
    (err: unknown) => err instanceof DynamoError && err.reason === "vocabulary_empty",
  );
});
