import { DynamoError } from "../errors/mod.ts";

/** The part of a tokenizer prompts are built with (`ModelTokenizer` has it). */
export interface PromptTokenizer {
  encode(text: string, options?: { addSpecialTokens?: boolean }): number[];
  decode(ids: readonly number[], options?: { skipSpecialTokens?: boolean }): string;
}

/** Fewer one-token words than this and prompts would be too repetitive to be realistic. */
export const MIN_PROMPT_WORDS = 256;

/**
 * Token ids of words that the tokenizer encodes, with their leading space, as exactly one
 * token: ` the`, ` and`, ... Text made of such words (decoded from a sequence of these ids)
 * encodes back to exactly those ids, because byte-level BPE pre-tokenizers split before
 * each space-prefixed word, so a prompt of N of them is N tokens. Scans ids from 0 (the
 * common words come first in BPE vocabularies) until `maxWords` are found.
 */
export function singleTokenWords(
  tokenizer: PromptTokenizer,
  options: { maxWords?: number; maxIdsScanned?: number; source?: string } = {},
): number[] {
  const maxWords = options.maxWords ?? 4096;
  const maxIds = options.maxIdsScanned ?? 200_000;
  const out: number[] = [];
  for (let id = 0; id < maxIds && out.length < maxWords; id++) {
    let text: string;
    try {
      text = tokenizer.decode([id], { skipSpecialTokens: true });
    } catch {
      break; // past the end of the vocabulary
    }
    if (!/^ [a-z]{3,12}$/.test(text)) continue;
    const ids = tokenizer.encode(text, { addSpecialTokens: false });
    if (ids.length === 1 && ids[0] === id) out.push(id);
  }
  if (out.length < MIN_PROMPT_WORDS) {
    throw new DynamoError(
      "invalid_request",
      "tokenizer_unsuitable",
      `Cannot build exact-length prompts with the tokenizer ${
        options.source ?? ""
      }: only ${out.length} words encode as one token each (need ${MIN_PROMPT_WORDS})`,
    );
  }
  return out;
}
