/** The part of a tokenizer the detokenizer needs. */
export interface Decoder {
  decode(ids: readonly number[], options?: { skipSpecialTokens?: boolean }): string;
}

const REPLACEMENT_CHAR = "\uFFFD";

/**
 * Turns a stream of token ids into text deltas, never emitting half of a multi-byte
 * character. It decodes a short window of recent tokens twice (up to the last emitted point
 * and up to the end) and emits the difference, holding back while the window ends in an
 * incomplete UTF-8 sequence (which the decoder renders as U+FFFD). The window is bounded by
 * the tokens since the last emitted text, so the cost per token stays constant.
 */
export class IncrementalDetokenizer {
  readonly #decoder: Decoder;
  readonly #ids: number[] = [];
  #prefixOffset = 0;
  #readOffset = 0;
  /** Tokens held back waiting for the rest of a character; past this, emit anyway. */
  readonly #maxPendingTokens: number;

  constructor(decoder: Decoder, options: { maxPendingTokens?: number } = {}) {
    this.#decoder = decoder;
    this.#maxPendingTokens = options.maxPendingTokens ?? 8;
  }

  /** Adds token ids; returns the text that is now complete (possibly ""). */
  push(ids: readonly number[]): string {
    let out = "";
    for (const id of ids) {
      this.#ids.push(id);
      out += this.#step(false);
    }
    return out;
  }

  /** Emits whatever is held back (at the end of the stream). */
  flush(): string {
    return this.#step(true);
  }

  #step(force: boolean): string {
    if (this.#readOffset >= this.#ids.length) return "";
    const prefixText = this.#decode(this.#prefixOffset, this.#readOffset);
    const fullText = this.#decode(this.#prefixOffset, this.#ids.length);
    const pending = this.#ids.length - this.#readOffset;
    const incomplete = fullText.endsWith(REPLACEMENT_CHAR);
    if (!force && (incomplete && pending < this.#maxPendingTokens)) return "";
    if (fullText.length <= prefixText.length && !force) {
      // A token that renders as nothing (e.g. a skipped special token): move past it.
      this.#prefixOffset = this.#readOffset;
      this.#readOffset = this.#ids.length;
      return "";
    }
    this.#prefixOffset = this.#readOffset;
    this.#readOffset = this.#ids.length;
    // Trim the window: the retained history never grows beyond what is being decoded.
    if (this.#prefixOffset > 1024) {
      this.#ids.splice(0, this.#prefixOffset);
      this.#readOffset -= this.#prefixOffset;
      this.#prefixOffset = 0;
    }
    return fullText.slice(prefixText.length);
  }

  #decode(start: number, end: number): string {
    if (end <= start) return "";
    return this.#decoder.decode(this.#ids.slice(start, end), { skipSpecialTokens: true });
  }
}
