import { Tokenizer } from "@huggingface/tokenizers";
import { Template } from "@huggingface/jinja";
import { join } from "node:path";
import { DynamoError } from "../errors/mod.ts";

/** One chat message after normalisation: text content only. */
export interface ChatMessage {
  readonly role: string;
  readonly content: string;
  readonly name?: string;
  readonly [extra: string]: unknown;
}

/**
 * A model's tokenizer and chat template, loaded from Hugging Face files: `tokenizer.json`
 * and `tokenizer_config.json` (which holds `chat_template`, `eos_token`, `bos_token`), plus
 * `generation_config.json` when present (extra EOS ids).
 */
export class ModelTokenizer {
  readonly #tokenizer: Tokenizer;
  readonly #template: Template | undefined;
  readonly #config: Readonly<Record<string, unknown>>;
  /** Token ids that end generation unless a request says `ignore_eos`. */
  readonly eosTokenIds: readonly number[];
  /** Ids of special tokens (skipped when decoding output). */
  readonly specialTokenIds: ReadonlySet<number>;

  private constructor(
    tokenizer: Tokenizer,
    config: Record<string, unknown>,
    eosTokenIds: number[],
  ) {
    this.#tokenizer = tokenizer;
    this.#config = config;
    const template = config["chat_template"];
    this.#template = typeof template === "string" ? new Template(template) : undefined;
    this.eosTokenIds = eosTokenIds;
    this.specialTokenIds = new Set(tokenizer.get_added_tokens_decoder().keys());
  }

  /** Loads the files from `dir`; fails with invalid_request naming the missing file. */
  static async load(dir: string): Promise<ModelTokenizer> {
    const tokenizerJson = await readJson(join(dir, "tokenizer.json"), true);
    const config = await readJson(join(dir, "tokenizer_config.json"), false) ?? {};
    const generation = await readJson(join(dir, "generation_config.json"), false) ?? {};
    const tokenizer = new Tokenizer(tokenizerJson!, config);
    const eos = new Set<number>();
    const eosToken = tokenText(config["eos_token"]);
    const eosId = eosToken === undefined ? undefined : tokenizer.token_to_id(eosToken);
    if (eosId !== undefined) eos.add(eosId);
    const genEos = generation["eos_token_id"];
    for (const id of Array.isArray(genEos) ? genEos : [genEos]) {
      if (typeof id === "number") eos.add(id);
    }
    return new ModelTokenizer(tokenizer, config, [...eos]);
  }

  get hasChatTemplate(): boolean {
    return this.#template !== undefined;
  }

  encode(text: string, options: { addSpecialTokens?: boolean } = {}): number[] {
    return this.#tokenizer.encode(text, { add_special_tokens: options.addSpecialTokens ?? true })
      .ids;
  }

  decode(ids: readonly number[], options: { skipSpecialTokens?: boolean } = {}): string {
    return this.#tokenizer.decode(ids as number[], {
      skip_special_tokens: options.skipSpecialTokens ?? true,
    });
  }

  /** Renders the chat template (add_generation_prompt on), as vLLM and Dynamo do. */
  renderChat(
    messages: readonly ChatMessage[],
    options: { tools?: readonly unknown[]; kwargs?: Readonly<Record<string, unknown>> } = {},
  ): string {
    if (this.#template === undefined) {
      throw new DynamoError(
        "invalid_request",
        "no_chat_template",
        "Cannot render chat messages: the model has no chat template; use /v1/completions",
      );
    }
    try {
      return this.#template.render({
        ...options.kwargs,
        messages,
        tools: options.tools,
        add_generation_prompt: true,
        bos_token: tokenText(this.#config["bos_token"]) ?? "",
        eos_token: tokenText(this.#config["eos_token"]) ?? "",
      });
    } catch (err) {
      throw new DynamoError(
        "invalid_request",
        "chat_template_error",
        `Cannot render the chat template: ${err instanceof Error ? err.message : String(err)}`,
        { param: "messages", cause: err },
      );
    }
  }
}

function tokenText(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (value !== null && typeof value === "object" && "content" in value) {
    const content = (value as { content: unknown }).content;
    return typeof content === "string" ? content : undefined;
  }
  return undefined;
}

async function readJson(
  path: string,
  required: boolean,
): Promise<Record<string, unknown> | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (!required && err instanceof Deno.errors.NotFound) return undefined;
    throw new DynamoError("invalid_request", "tokenizer_missing", `Cannot read ${path}: ${err}`, {
      cause: err,
    });
  }
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new DynamoError("invalid_request", "tokenizer_invalid", `Cannot parse ${path}: ${err}`, {
      cause: err,
    });
  }
}

/** Loads each tokenizer directory once per process; concurrent callers share the load. */
export class TokenizerCache {
  readonly #entries = new Map<string, Promise<ModelTokenizer>>();
  readonly #maxEntries: number;

  constructor(maxEntries = 16) {
    this.#maxEntries = maxEntries;
  }

  get(dir: string): Promise<ModelTokenizer> {
    let entry = this.#entries.get(dir);
    if (entry === undefined) {
      if (this.#entries.size >= this.#maxEntries) {
        const oldest = this.#entries.keys().next().value!;
        this.#entries.delete(oldest);
      }
      entry = ModelTokenizer.load(dir);
      entry.catch(() => this.#entries.delete(dir));
      this.#entries.set(dir, entry);
    }
    return entry;
  }
}
