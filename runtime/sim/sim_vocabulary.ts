import type { MockerVocabulary } from "../engines/mod.ts";

/** The end-of-sequence id of the simulated model. */
export const SIM_EOS_TOKEN_ID = 2;

/** First id of the simulated engines' output words (above the trace token range). */
const SIM_WORD_BASE = 200_000;
const SIM_WORDS = 1000;

/**
 * The engines' output vocabulary: the simulator needs no tokenizer, only distinct ids.
 * One thousand one-token "words" (ids 200000–200999, clear of the ids trace and synthetic
 * prompts use), a full stop, and EOS.
 */
export const SIM_VOCABULARY: MockerVocabulary = Object.freeze({
  wordTokenIds: Object.freeze(
    Array.from({ length: SIM_WORDS }, (_, i) => Object.freeze([SIM_WORD_BASE + i])),
  ),
  eosTokenIds: Object.freeze([SIM_EOS_TOKEN_ID]),
  sentenceEndTokenIds: Object.freeze([SIM_WORD_BASE + SIM_WORDS]),
});

/** Token ids synthetic prompts are drawn from (32,000 ids from 1000). */
export const SIM_PROMPT_VOCABULARY: readonly number[] = Object.freeze(
  Array.from({ length: 32_000 }, (_, i) => 1000 + i),
);
