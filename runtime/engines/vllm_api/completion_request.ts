import { z } from "zod";
import { DynamoError } from "../../errors/mod.ts";
import type { EngineRequest } from "../../protocol/mod.ts";

const TokenIds = z.array(z.number().int().min(0));

/**
 * The `/v1/completions` body the stand-in accepts: vLLM's `CompletionRequest`
 * (`vllm/entrypoints/openai/completion/protocol.py`) for one prompt. Unknown fields are
 * allowed and ignored, as vLLM's `OpenAIBaseModel` (extra="allow") does.
 */
export const CompletionRequestSchema = z.looseObject({
  model: z.string().nullish(),
  prompt: z.union([TokenIds, z.array(TokenIds), z.string(), z.array(z.string())]).nullish(),
  max_tokens: z.number().int().nullish(),
  n: z.number().int().nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.looseObject({
    include_usage: z.boolean().nullish(),
    continuous_usage_stats: z.boolean().nullish(),
  }).nullish(),
  temperature: z.number().min(0).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  top_k: z.number().int().min(-1).nullish(),
  seed: z.number().int().nullish(),
  min_tokens: z.number().int().min(0).nullish(),
  ignore_eos: z.boolean().nullish(),
  stop_token_ids: TokenIds.nullish(),
  add_special_tokens: z.boolean().nullish(),
  return_token_ids: z.boolean().nullish(),
  request_id: z.string().nullish(),
  echo: z.boolean().nullish(),
  logprobs: z.number().int().nullish(),
  prompt_logprobs: z.number().int().nullish(),
  use_beam_search: z.boolean().nullish(),
  suffix: z.string().nullish(),
});
export type CompletionRequest = z.infer<typeof CompletionRequestSchema>;

/** What a validated request becomes: the engine request and how to answer it. */
export interface ParsedCompletion {
  readonly engineRequest: EngineRequest;
  readonly stream: boolean;
  readonly includeUsage: boolean;
  readonly continuousUsage: boolean;
  readonly returnTokenIds: boolean;
}

/** What validation needs to know about the served model. */
export interface CompletionContext {
  readonly servedModelNames: readonly string[];
  readonly maxModelLen: number;
  readonly eosTokenIds: readonly number[];
  /** Tokenizes a text prompt. */
  readonly encode: (text: string, addSpecialTokens: boolean) => number[];
  /** The engine's request id for this HTTP request. */
  readonly requestId: string;
}

/**
 * Validates a completion body as vLLM does and builds the engine request. Errors are
 * `invalid_request` (400 with vLLM's message) or `not_found` (404, unknown model). Options
 * vLLM accepts but the stand-in does not model (several prompts, n > 1, echo, logprobs,
 * beam search, suffix) are refused with a 400 that says so.
 */
export function parseCompletion(body: unknown, ctx: CompletionContext): ParsedCompletion {
  const parsed = CompletionRequestSchema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.join(".") || "body";
    throw bad(`1 validation error for CompletionRequest\n${field}\n  ${issue.message}`, field);
  }
  const req = parsed.data;
  if (req.model !== undefined && req.model !== null && !ctx.servedModelNames.includes(req.model)) {
    throw new DynamoError(
      "not_found",
      "model_not_found",
      `The model \`${req.model}\` does not exist.`,
      { param: "model" },
    );
  }
  if (req.stream_options && !req.stream) {
    throw bad("Stream options can only be defined when `stream=True`.", "stream_options");
  }
  refuseUnmodelled(req);
  const promptIds = promptTokenIds(req, ctx);
  const maxTokens = req.max_tokens ?? 16;
  if (maxTokens < 1) throw bad(`max_tokens must be at least 1, got ${maxTokens}.`, "max_tokens");
  checkContext(promptIds.length, maxTokens, ctx.maxModelLen);
  const minTokens = req.min_tokens ?? 0;
  if (minTokens > maxTokens) {
    throw bad(
      `min_tokens must be less than or equal to max_tokens=${maxTokens}, got ${minTokens}.`,
      "min_tokens",
    );
  }
  const stream = req.stream === true;
  return {
    engineRequest: {
      request_id: ctx.requestId,
      model: ctx.servedModelNames[0]!,
      token_ids: promptIds,
      stop_conditions: {
        max_tokens: maxTokens,
        min_tokens: minTokens,
        ignore_eos: req.ignore_eos === true,
        stop_token_ids: req.stop_token_ids ?? [],
      },
      sampling_options: {
        temperature: req.temperature ?? null,
        top_p: req.top_p ?? null,
        top_k: req.top_k === undefined || req.top_k === null || req.top_k < 1 ? null : req.top_k,
        seed: req.seed ?? null,
      },
      eos_token_ids: [...ctx.eosTokenIds],
    },
    stream,
    includeUsage: stream && req.stream_options?.include_usage !== false &&
      req.stream_options !== undefined && req.stream_options !== null,
    continuousUsage: stream && req.stream_options?.continuous_usage_stats === true,
    returnTokenIds: req.return_token_ids === true,
  };
}

function refuseUnmodelled(req: CompletionRequest): void {
  const unmodelled: [boolean, string][] = [
    [(req.n ?? 1) !== 1, "n"],
    [req.echo === true, "echo"],
    [req.logprobs !== undefined && req.logprobs !== null, "logprobs"],
    [req.prompt_logprobs !== undefined && req.prompt_logprobs !== null, "prompt_logprobs"],
    [req.use_beam_search === true, "use_beam_search"],
    [req.suffix !== undefined && req.suffix !== null, "suffix"],
  ];
  for (const [used, field] of unmodelled) {
    if (used) {
      throw bad(`The vLLM stand-in (dynamo mocker) does not support \`${field}\`.`, field);
    }
  }
}

function promptTokenIds(req: CompletionRequest, ctx: CompletionContext): number[] {
  const prompt = req.prompt;
  const empty = prompt === undefined || prompt === null || prompt === "" ||
    (Array.isArray(prompt) && prompt.length === 0);
  if (empty) throw bad("Either prompt or prompt_embeds must be provided and non-empty.", "prompt");
  if (typeof prompt === "string") return ctx.encode(prompt, req.add_special_tokens ?? true);
  if (prompt.every((p) => typeof p === "number")) return prompt as number[];
  if (prompt.length > 1) {
    throw bad("The vLLM stand-in (dynamo mocker) serves one prompt per request.", "prompt");
  }
  const only = prompt[0]!;
  const ids = typeof only === "string" ? ctx.encode(only, req.add_special_tokens ?? true) : only;
  if (ids.length === 0) {
    throw bad("Either prompt or prompt_embeds must be provided and non-empty.", "prompt");
  }
  return ids;
}

/** vLLM's context checks (`OpenAIServing._validate_input`): prompt, then prompt + max_tokens. */
function checkContext(promptTokens: number, maxTokens: number, maxModelLen: number): void {
  if (promptTokens >= maxModelLen) {
    throw bad(
      `This model's maximum context length is ${maxModelLen} tokens. However, your request has ${promptTokens} input tokens. Please reduce the length of the input messages.`,
      "prompt",
    );
  }
  if (promptTokens + maxTokens > maxModelLen) {
    throw bad(
      `'max_tokens' or 'max_completion_tokens' is too large: ${maxTokens}. This model's maximum context length is ${maxModelLen} tokens and your request has ${promptTokens} input tokens (${maxTokens} > ${maxModelLen} - ${promptTokens}).`,
      "max_tokens",
    );
  }
}

function bad(message: string, param: string): DynamoError {
  return new DynamoError("invalid_request", "bad_request", message, { param });
}
