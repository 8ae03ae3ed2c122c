import { DynamoError } from "../../errors/mod.ts";
import type { EngineRequest } from "../../protocol/mod.ts";
import { type Rng, SeededRng, seedFrom } from "../../util/mod.ts";
import { COMMON_WORDS, SENTENCE_STARTERS } from "./_words.ts";

/**
 * The token ids the mocker writes with: common English words (each encoded with its
 * leading space), sentence punctuation, and the model's EOS ids.
 */
export interface MockerVocabulary {
  /** Token-id sequences of words, each with its leading space (" the", " system"). */
  readonly wordTokenIds: readonly (readonly number[])[];
  /** The model's end-of-sequence ids; the mocker ends naturally with `eosTokenIds[0]`. */
  readonly eosTokenIds: readonly number[];
  /** Token ids of "." (ends a sentence); without it, output is one long sentence. */
  readonly sentenceEndTokenIds?: readonly number[];
  /** Capitalised words that open a sentence (" The"); without them, `wordTokenIds` are used. */
  readonly sentenceStartTokenIds?: readonly (readonly number[])[];
}

/** The most tokens one vocabulary word may take. */
export const MAX_TOKENS_PER_WORD = 2;

/**
 * Builds a vocabulary from a tokenizer's `encode` (which must not add special tokens),
 * keeping only the words that encode to at most two tokens.
 */
export function buildMockerVocabulary(
  encode: (text: string) => number[],
  eosTokenIds: number[],
): MockerVocabulary {
  const keep = (words: readonly string[]): (readonly number[])[] => {
    const out: (readonly number[])[] = [];
    for (const word of words) {
      const ids = encode(` ${word}`);
      if (ids.length >= 1 && ids.length <= MAX_TOKENS_PER_WORD) out.push(Object.freeze(ids));
    }
    return out;
  };
  const wordTokenIds = keep(COMMON_WORDS);
  if (wordTokenIds.length === 0) {
    throw new DynamoError(
      "internal",
      "vocabulary_empty",
      `Cannot build mocker vocabulary: none of ${COMMON_WORDS.length} words encodes to at most ${MAX_TOKENS_PER_WORD} tokens`,
    );
  }
  const period = encode(".");
  const vocabulary: MockerVocabulary = {
    wordTokenIds: Object.freeze(wordTokenIds),
    eosTokenIds: Object.freeze([...eosTokenIds]),
    sentenceStartTokenIds: Object.freeze(keep(SENTENCE_STARTERS)),
    ...(period.length >= 1 && period.length <= MAX_TOKENS_PER_WORD
      ? { sentenceEndTokenIds: Object.freeze(period) }
      : {}),
  };
  return Object.freeze(vocabulary);
}

/** Throws a DynamoError naming the problem if `vocabulary` cannot drive a generator. */
export function validateVocabulary(vocabulary: MockerVocabulary): void {
  const fail = (what: string): never => {
    throw new DynamoError(
      "internal",
      "invalid_vocabulary",
      `Cannot use mocker vocabulary: ${what}`,
    );
  };
  if (vocabulary.wordTokenIds.length === 0) fail("it has no words");
  const nonEmpty = (ids: readonly number[]): boolean =>
    ids.length > 0 && ids.every((id) => Number.isInteger(id) && id >= 0 && id <= 0xffffffff);
  if (!vocabulary.wordTokenIds.every(nonEmpty)) fail("a word has no or invalid token ids");
  if (vocabulary.sentenceStartTokenIds?.every(nonEmpty) === false) {
    fail("a sentence starter has no or invalid token ids");
  }
  const end = vocabulary.sentenceEndTokenIds;
  if (end !== undefined && !nonEmpty(end)) fail("sentenceEndTokenIds is empty or invalid");
}

/** FNV-1a over the token ids' four bytes: the seed of greedy (temperature 0) output. */
export function hashTokenIds(tokenIds: readonly number[]): number {
  let h = 0x811c9dc5;
  for (const token of tokenIds) {
    for (let shift = 0; shift < 32; shift += 8) {
      h ^= (token >>> shift) & 0xff;
      h = Math.imul(h, 0x01000193);
    }
  }
  return h >>> 0;
}

/**
 * The seed of a request's output: its `sampling_options.seed` when given; a hash of the
 * prompt when temperature is 0 (greedy output is a function of the prompt); otherwise a
 * draw from the engine's Rng.
 */
export function outputSeed(request: EngineRequest, engineRng: Rng): number {
  const { seed, temperature } = request.sampling_options;
  if (seed !== null) return seedFrom(seed);
  if (temperature === 0) return hashTokenIds(request.token_ids);
  return engineRng.nextU32();
}

/** A geometric draw on {1, 2, ...} with the given mean (at least 1). */
export function geometricLength(rng: Rng, meanTokens: number): number {
  if (!(meanTokens > 1)) return 1;
  const u = rng.nextFloat();
  const n = Math.floor(Math.log1p(-u) / Math.log1p(-1 / meanTokens)) + 1;
  return Math.min(n, Number.MAX_SAFE_INTEGER);
}

export interface OutputTokenOptions {
  /** Mean natural output length, EOS included (geometric). */
  readonly meanOutputTokens: number;
  /** The EOS id to end with, or null to never end naturally (ignore_eos, or no EOS known). */
  readonly eosTokenId: number | null;
  /** EOS never comes before this many tokens have been generated. */
  readonly minTokens: number;
}

/**
 * Deterministic mock output for one request: words one token at a time, a full stop after
 * every 6-15 words, and EOS at a natural length drawn up front (never before min_tokens).
 */
export class OutputTokenGenerator {
  /** The 1-based index of the token that is EOS (Infinity: never). */
  readonly eosAtToken: number;
  readonly #vocabulary: MockerVocabulary;
  readonly #rng: Rng;
  readonly #eosTokenId: number;
  #emitted = 0;
  #pending: readonly number[] = [];
  #pendingIndex = 0;
  #wordsLeftInSentence: number;
  #sentenceStart = false;

  constructor(vocabulary: MockerVocabulary, seed: number, options: OutputTokenOptions) {
    if (vocabulary.wordTokenIds.length === 0) {
      throw new DynamoError(
        "internal",
        "vocabulary_empty",
        "Cannot generate: the vocabulary has no words",
      );
    }
    this.#vocabulary = vocabulary;
    this.#rng = new SeededRng(seed);
    const natural = geometricLength(this.#rng, options.meanOutputTokens);
    this.#eosTokenId = options.eosTokenId ?? -1;
    this.eosAtToken = options.eosTokenId === null
      ? Infinity
      : Math.max(natural, options.minTokens + 1);
    this.#wordsLeftInSentence = this.#sentenceLength();
  }

  /** The next output token id. */
  next(): number {
    this.#emitted++;
    if (this.#emitted === this.eosAtToken) return this.#eosTokenId;
    if (this.#pendingIndex < this.#pending.length) return this.#pending[this.#pendingIndex++]!;
    const v = this.#vocabulary;
    if (this.#wordsLeftInSentence <= 0 && v.sentenceEndTokenIds !== undefined) {
      this.#pending = v.sentenceEndTokenIds;
      this.#wordsLeftInSentence = this.#sentenceLength();
      this.#sentenceStart = true;
    } else {
      const starters = v.sentenceStartTokenIds;
      const list = this.#sentenceStart && starters !== undefined && starters.length > 0
        ? starters
        : v.wordTokenIds;
      this.#pending = list[this.#rng.nextInt(list.length)]!;
      this.#sentenceStart = false;
      this.#wordsLeftInSentence--;
    }
    this.#pendingIndex = 1;
    return this.#pending[0]!;
  }

  #sentenceLength(): number {
    return 6 + this.#rng.nextInt(10);
  }
}
