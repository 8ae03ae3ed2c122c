/**
 * LLM text processing for the frontend: Hugging Face tokenizer and chat-template loading,
 * incremental detokenization, and stop-string matching. No networking.
 * @module
 */
export { type ChatMessage, ModelTokenizer, TokenizerCache } from "./model_tokenizer.ts";
export { type Decoder, IncrementalDetokenizer } from "./incremental_detokenizer.ts";
export { StopMatcher } from "./stop_matcher.ts";
