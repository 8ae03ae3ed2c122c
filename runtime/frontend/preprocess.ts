import { DynamoError } from "../errors/mod.ts";
import type { ChatMessage } from "../llm/mod.ts";
import type { EngineRequest } from "../protocol/mod.ts";
import type { ServedModel } from "./model_registry.ts";
import type {
  ChatCompletionRequest,
  ChatMessageInput,
  CompletionRequest,
} from "./openai_schemas.ts";

/** A request ready for the pipeline, plus what the response needs. */
export interface Preprocessed {
  readonly engineRequest: EngineRequest;
  readonly stops: readonly string[];
  readonly stream: boolean;
  readonly includeUsage: boolean;
  readonly wantWorkerId: boolean;
}

type CommonRequest = ChatCompletionRequest | CompletionRequest;

/** Templates and tokenizes a chat request. */
export function preprocessChat(
  body: ChatCompletionRequest,
  model: ServedModel,
  options: { requestId: string; pinnedInstanceId?: number },
): Preprocessed {
  const messages = body.messages.map(normalizeMessage);
  const prompt = model.tokenizer.renderChat(messages, {
    tools: body.tools,
    kwargs: body.chat_template_kwargs,
  });
  const tokenIds = model.tokenizer.encode(prompt, { addSpecialTokens: false });
  const maxTokens = body.max_completion_tokens ?? body.max_tokens ?? undefined;
  return build(body, model, tokenIds, maxTokens, { ...options, promptParam: "messages" });
}

/** Tokenizes a text completion request (or takes its token ids as given). */
export function preprocessCompletion(
  body: CompletionRequest,
  model: ServedModel,
  options: { requestId: string; pinnedInstanceId?: number },
): Preprocessed {
  if (body.echo === true) unsupported("echo", "echo is not supported");
  if (body.suffix != null && body.suffix !== "") unsupported("suffix", "suffix is not supported");
  if (body.best_of != null && body.best_of > 1) {
    unsupported("best_of", "best_of > 1 is not supported");
  }
  const prompt = body.prompt;
  let tokenIds: number[];
  if (typeof prompt === "string") {
    tokenIds = model.tokenizer.encode(prompt);
  } else if (prompt.length === 1 && typeof prompt[0] === "string") {
    tokenIds = model.tokenizer.encode(prompt[0]);
  } else if (typeof prompt[0] === "number") {
    tokenIds = prompt as number[];
  } else if (prompt.length === 1) {
    tokenIds = prompt[0] as number[];
  } else {
    unsupported("prompt", "Batched prompts are not supported; send one prompt per request");
  }
  return build(body, model, tokenIds, body.max_tokens ?? undefined, {
    ...options,
    promptParam: "prompt",
  });
}

function build(
  body: CommonRequest,
  model: ServedModel,
  tokenIds: number[],
  requestedMaxTokens: number | undefined,
  options: { requestId: string; pinnedInstanceId?: number; promptParam: string },
): Preprocessed {
  if (body.n != null && body.n > 1) {
    unsupported("n", "n > 1 is not supported; send n separate requests instead");
  }
  if (body.logprobs === true || (typeof body.logprobs === "number" && body.logprobs > 0)) {
    unsupported("logprobs", "logprobs are not supported");
  }
  const contextLength = model.card.context_length;
  if (tokenIds.length === 0) {
    throw new DynamoError("invalid_request", "empty_prompt", "The prompt is empty", {
      param: options.promptParam,
    });
  }
  if (tokenIds.length >= contextLength) {
    throw new DynamoError(
      "invalid_request",
      "context_length_exceeded",
      `This model's maximum context length is ${contextLength} tokens, but the prompt has ${tokenIds.length} tokens`,
      { param: options.promptParam },
    );
  }
  const maxTokens = requestedMaxTokens ?? contextLength - tokenIds.length;
  if (tokenIds.length + maxTokens > contextLength) {
    throw new DynamoError(
      "invalid_request",
      "context_length_exceeded",
      `This model's maximum context length is ${contextLength} tokens; the prompt has ${tokenIds.length} tokens and max_tokens is ${maxTokens}`,
      { param: "max_tokens" },
    );
  }
  const minTokens = body.min_tokens ?? 0;
  if (minTokens > maxTokens) {
    throw new DynamoError(
      "invalid_request",
      "invalid_field",
      `min_tokens (${minTokens}) must not exceed max_tokens (${maxTokens})`,
      { param: "min_tokens" },
    );
  }
  const stops = body.stop == null ? [] : typeof body.stop === "string" ? [body.stop] : body.stop;
  const pinned = options.pinnedInstanceId ?? body.nvext?.backend_instance_id;
  const engineRequest: EngineRequest = {
    request_id: options.requestId,
    model: body.model,
    token_ids: tokenIds,
    stop_conditions: {
      max_tokens: maxTokens,
      min_tokens: minTokens,
      ignore_eos: body.ignore_eos ?? body.nvext?.ignore_eos ?? false,
      stop_token_ids: [],
    },
    sampling_options: {
      temperature: body.temperature ?? null,
      top_p: body.top_p ?? null,
      top_k: body.top_k ?? null,
      seed: body.seed ?? null,
    },
    eos_token_ids: [...model.tokenizer.eosTokenIds],
    ...(pinned === undefined ? {} : { routing: { backend_instance_id: pinned } }),
    ...(body.nvext?.router_config_override === undefined
      ? {}
      : { router_config_override: body.nvext.router_config_override }),
  };
  return {
    engineRequest,
    stops: stops.filter((s) => s !== ""),
    stream: body.stream ?? false,
    includeUsage: body.stream_options?.include_usage ?? false,
    wantWorkerId: body.nvext?.extra_fields?.includes("worker_id") ?? false,
  };
}

function normalizeMessage(m: ChatMessageInput): ChatMessage {
  const content = m.content == null
    ? ""
    : typeof m.content === "string"
    ? m.content
    : m.content.map((p) => p.text).join("");
  const out: Record<string, unknown> = { role: m.role, content };
  if (m.name !== undefined) out.name = m.name;
  if (m.tool_calls !== undefined) out.tool_calls = m.tool_calls;
  if (m.tool_call_id !== undefined) out.tool_call_id = m.tool_call_id;
  if (m.reasoning_content != null) out.reasoning_content = m.reasoning_content;
  return out as unknown as ChatMessage;
}

function unsupported(param: string, message: string): never {
  throw new DynamoError("invalid_request", "unsupported_parameter", message, { param });
}
