/**
 * Tokens: Dynamo-compatible block hashing (XXH3-64, seed 1337; sequence-hash chaining).
 * Used by the mocker's prefix cache and the router's index. Does not tokenize text.
 * @module
 */
export { BlockHasher, loraSeed, XXH3_SEED } from "./block_hash.ts";
