import type { CompletionUsage, EngineOutput, FinishReason } from "../../protocol/mod.ts";
import { type Deferred, deferred } from "../../util/mod.ts";

interface PendingItem {
  token_ids: number[];
  finish_reason?: FinishReason;
  completion_usage?: CompletionUsage;
}

/**
 * One request's output buffer between the engine loop and its consumer. It holds at most
 * `maxItems` items: when the consumer falls behind, new tokens are merged into the last
 * buffered item instead, so the loop never waits for a consumer and memory stays bounded
 * (the merged item can hold at most the request's own max_tokens).
 */
export class OutputStream {
  readonly #maxItems: number;
  #items: PendingItem[] = [];
  #waiter: Deferred<void> | undefined;
  #ended = false;
  #tokensPushed = 0;

  constructor(maxItems: number) {
    this.#maxItems = Math.max(1, maxItems);
  }

  /** True once the last item has been pushed. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Tokens handed to the stream so far (what the consumer has been or will be sent). */
  get tokensPushed(): number {
    return this.#tokensPushed;
  }

  /** Items waiting for the consumer. */
  get buffered(): number {
    return this.#items.length;
  }

  push(tokenIds: readonly number[], finishReason?: FinishReason, usage?: CompletionUsage): void {
    if (this.#ended) return;
    this.#tokensPushed += tokenIds.length;
    let item: PendingItem;
    if (this.buffered >= this.#maxItems) {
      item = this.#items[this.#items.length - 1]!;
      for (const t of tokenIds) item.token_ids.push(t);
    } else {
      item = { token_ids: [...tokenIds] };
      this.#items.push(item);
    }
    if (finishReason !== undefined) item.finish_reason = finishReason;
    if (usage !== undefined) item.completion_usage = usage;
    if (finishReason !== undefined) this.#ended = true;
    this.#wake();
  }

  /** Ends the stream without a final item (the engine stopped without a reason to give). */
  end(): void {
    this.#ended = true;
    this.#wake();
  }

  /** The next item, or undefined once the stream has ended and is drained. */
  async next(): Promise<EngineOutput | undefined> {
    for (;;) {
      // At most maxItems are buffered, so shift() stays cheap.
      const item = this.#items.shift();
      if (item !== undefined) return item;
      if (this.#ended) return undefined;
      this.#waiter = deferred<void>();
      await this.#waiter.promise;
    }
  }

  #wake(): void {
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.resolve();
  }
}
