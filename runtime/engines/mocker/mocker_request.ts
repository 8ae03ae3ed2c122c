import type { CompletionUsage, FinishReason } from "../../protocol/mod.ts";
import type { BlockHasher } from "../../tokens/mod.ts";
import type { KvBlock, KvBlockSource } from "./kv_manager.ts";
import type { OutputTokenGenerator } from "./output_tokens.ts";

export type MockerRequestState = "waiting" | "running" | "done";

/** What a finished request was told to stop on. */
export interface StopRule {
  /** Output tokens the request may produce (max_tokens, capped by the context length). */
  readonly maxOutputTokens: number;
  /** EOS and stop ids take effect only after this many tokens. */
  readonly minTokens: number;
  /** Ids that end the request with "stop" (stop_token_ids, plus EOS ids unless ignore_eos). */
  readonly stopTokenIds: ReadonlySet<number> | null;
}

const INITIAL_OUTPUT_ROOM_TOKENS = 256;

/**
 * One request inside the mocker: its tokens (prompt, then output), the KV blocks it holds,
 * and its progress. Full blocks are hashed once, on first need, and the hashes kept across
 * preemptions.
 */
export class MockerRequest implements KvBlockSource {
  readonly id: string;
  readonly promptTokens: number;
  readonly stopRule: StopRule;
  readonly generator: OutputTokenGenerator;
  /** The KV blocks this request holds, in sequence order. */
  readonly blocks: KvBlock[] = [];
  state: MockerRequestState = "waiting";
  /** Tokens whose KV has been computed (or reused from the prefix cache). */
  computedTokens = 0;
  /** Tokens to (re)compute before decoding: the prompt, or prompt + output after preemption. */
  prefillEndTokens: number;
  generatedTokens = 0;
  /** Prompt tokens served from the prefix cache at first admission (-1: not admitted yet). */
  cachedTokens = -1;
  arrivalMs: number;
  /** Per-pass bookkeeping, valid while `passId` is the current pass (so it can be undone). */
  passId = -1;
  passTokens = 0;
  passIslTokens = 0;
  passPrefixTokens = 0;
  passPrefill = false;

  readonly #hasher: BlockHasher;
  readonly #blockSizeTokens: number;
  #tokens: Uint32Array;
  #length: number;
  readonly #localHashes: bigint[] = [];
  readonly #sequenceHashes: bigint[] = [];

  constructor(
    init: {
      id: string;
      promptTokenIds: readonly number[];
      stopRule: StopRule;
      generator: OutputTokenGenerator;
      arrivalMs: number;
    },
    hasher: BlockHasher,
    blockSizeTokens: number,
  ) {
    this.id = init.id;
    this.promptTokens = init.promptTokenIds.length;
    this.stopRule = init.stopRule;
    this.generator = init.generator;
    this.arrivalMs = init.arrivalMs;
    this.prefillEndTokens = this.promptTokens;
    this.#hasher = hasher;
    this.#blockSizeTokens = blockSizeTokens;
    const room = Math.min(init.stopRule.maxOutputTokens, INITIAL_OUTPUT_ROOM_TOKENS);
    this.#tokens = new Uint32Array(this.promptTokens + room + 1);
    this.#tokens.set(init.promptTokenIds);
    this.#length = this.promptTokens;
  }

  /** Prompt plus generated tokens. */
  get length(): number {
    return this.#length;
  }

  /** Prompt tokens still to compute (0 once decoding). */
  get pendingPrefillTokens(): number {
    return this.prefillEndTokens > this.computedTokens
      ? this.prefillEndTokens - this.computedTokens
      : 0;
  }

  /** True once the request may produce no more tokens. */
  get outputExhausted(): boolean {
    return this.generatedTokens >= this.stopRule.maxOutputTokens;
  }

  /** Appends a generated token; returns why the request finishes, if it does. */
  appendToken(token: number): FinishReason | undefined {
    if (this.#length === this.#tokens.length) {
      const grown = new Uint32Array(this.#tokens.length * 2);
      grown.set(this.#tokens);
      this.#tokens = grown;
    }
    this.#tokens[this.#length++] = token;
    this.generatedTokens++;
    // vLLM's check_stop order: the length cap wins over a stop token on the same step.
    const rule = this.stopRule;
    if (this.generatedTokens >= rule.maxOutputTokens) return "length";
    if (
      rule.stopTokenIds !== null && this.generatedTokens > rule.minTokens &&
      rule.stopTokenIds.has(token)
    ) return "stop";
    return undefined;
  }

  usage(): CompletionUsage {
    return {
      prompt_tokens: this.promptTokens,
      completion_tokens: this.generatedTokens,
      prompt_tokens_details: { cached_tokens: Math.max(0, this.cachedTokens) },
    };
  }

  sequenceHash(index: number): bigint {
    if (index >= this.#sequenceHashes.length) this.#hashThrough(index);
    return this.#sequenceHashes[index]!;
  }

  localHash(index: number): bigint {
    if (index >= this.#localHashes.length) this.#hashThrough(index);
    return this.#localHashes[index]!;
  }

  blockTokenIds(index: number): number[] {
    const bs = this.#blockSizeTokens;
    return Array.from(this.#tokens.subarray(index * bs, (index + 1) * bs));
  }

  /**
   * Hashes every full block not hashed yet (at least through `index`) in one call: a
   * request's blocks are asked for in order, so hashing them together saves a call per block.
   */
  #hashThrough(index: number): void {
    const bs = this.#blockSizeTokens;
    if ((index + 1) * bs > this.#length) {
      throw new Error(`Cannot hash block ${index} of request ${this.id}: it is not full`);
    }
    const from = this.#sequenceHashes.length;
    const through = Math.floor(this.#length / bs) - 1;
    const locals = this.#hasher.localHashes(
      this.#tokens.subarray(from * bs, (through + 1) * bs),
      bs,
    );
    let parent = from === 0 ? 0n : this.#sequenceHashes[from - 1]!;
    for (let k = 0; k < locals.length; k++) {
      const local = locals[k]!;
      parent = from + k === 0 ? local : this.#hasher.chain(parent, local);
      this.#localHashes.push(local);
      this.#sequenceHashes.push(parent);
    }
  }
}
