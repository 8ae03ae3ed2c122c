import { turnPrompt, type TurnSpec } from "../workload/mod.ts";
import type { PromptTokenizer } from "./prompt_words.ts";

/** Which OpenAI endpoint requests go to. */
export type BenchEndpoint = "chat" | "completions";

export interface RequestShape {
  readonly model: string;
  readonly endpoint: BenchEndpoint;
  /** Send `ignore_eos: true` so each answer has exactly max_tokens tokens. */
  readonly ignoreEos: boolean;
  /** Ask for Dynamo's `nvext.worker_id` (which worker served each request). */
  readonly askWorkerId: boolean;
  /** More fields merged into every body (e.g. `chat_template_kwargs`). */
  readonly extraBody: Readonly<Record<string, unknown>>;
}

/**
 * One session's side of a conversation: it builds each turn's request body from the turns
 * so far and the answers actually received. For completions the prompt is token ids (the
 * earlier prompt, the answer re-encoded, then the new tokens); for chat it is messages,
 * with each answer as an assistant message and new tokens decoded to text.
 */
export class Conversation {
  readonly #tokenizer: PromptTokenizer;
  readonly #shape: RequestShape;
  #history: number[] = [];
  readonly #messages: { role: string; content: string }[] = [];
  #lastPromptTokens = 0;

  constructor(tokenizer: PromptTokenizer, shape: RequestShape) {
    this.#tokenizer = tokenizer;
    this.#shape = shape;
  }

  /** The next turn's JSON body. */
  body(turn: TurnSpec): string {
    const s = this.#shape;
    const common: Record<string, unknown> = {
      model: s.model,
      max_tokens: turn.maxTokens,
      stream: true,
      stream_options: { include_usage: true },
    };
    if (s.ignoreEos) common["ignore_eos"] = true;
    if (s.askWorkerId) common["nvext"] = { extra_fields: ["worker_id"] };
    if (s.endpoint === "completions") {
      const prompt = turnPrompt(this.#history, turn);
      this.#history = prompt;
      this.#lastPromptTokens = prompt.length;
      return JSON.stringify({ ...common, prompt, ...s.extraBody });
    }
    this.#messages.push({ role: "user", content: this.#tokenizer.decode(turn.newTokens) });
    this.#lastPromptTokens = this.#history.length + turn.newTokens.length;
    this.#history = turnPrompt(this.#history, turn);
    return JSON.stringify({ ...common, messages: this.#messages, ...s.extraBody });
  }

  /** Tokens of the last prompt as sent (chat: without the template), for servers without usage. */
  get lastPromptTokens(): number {
    return this.#lastPromptTokens;
  }

  /** Records the answer to the last turn, so the next turn includes it. */
  answer(text: string): void {
    if (this.#shape.endpoint === "chat") {
      this.#messages.push({ role: "assistant", content: text });
    }
    const ids = this.#tokenizer.encode(text, { addSpecialTokens: false });
    for (const id of ids) this.#history.push(id);
  }
}
