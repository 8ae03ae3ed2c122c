import { z } from "zod";
import { DynamoError } from "../../errors/mod.ts";
import type { EngineRequest } from "../../protocol/mod.ts";

const TokenIds = z.array(z.number().int().min(0));

/**
 * The `/v1/completions` body: TensorRT-LLM's `CompletionRequest`
 * (`tensorrt_llm/serve/openai_protocol.py`). Its model forbids unknown fields
 * (`extra="forbid"`), so this schema is strict; fields it declares but the stand-in does not
 * model are accepted at their defaults and refused otherwise.
 */
export const TrtllmCompletionRequestSchema = z.strictObject({
  model: z.string(),
  prompt: z.union([TokenIds, z.array(TokenIds), z.string(), z.array(z.string())]),
  best_of: z.number().int().nullish(),
  echo: z.boolean().nullish(),
  frequency_penalty: z.number().nullish(),
  logit_bias: z.record(z.string(), z.number()).nullish(),
  logprobs: z.number().int().nullish(),
  max_tokens: z.number().int().nullish(),
  n: z.number().int().optional(),
  presence_penalty: z.number().nullish(),
  seed: z.number().int().nullish(),
  stop: z.union([z.string(), z.array(z.string())]).nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.strictObject({
    include_usage: z.boolean().nullish(),
    continuous_usage_stats: z.boolean().nullish(),
  }).nullish(),
  suffix: z.string().nullish(),
  temperature: z.number().min(0).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  user: z.string().nullish(),
  lora_request: z.unknown().optional(),
  prompt_ignore_length: z.number().int().nullish(),
  use_beam_search: z.boolean().optional(),
  top_k: z.number().int().min(0).optional(),
  top_p_min: z.number().optional(),
  min_p: z.number().optional(),
  repetition_penalty: z.number().optional(),
  length_penalty: z.number().nullish(),
  early_stopping: z.union([z.boolean(), z.literal("never")]).nullish(),
  stop_token_ids: TokenIds.nullish(),
  include_stop_str_in_output: z.boolean().optional(),
  ignore_eos: z.boolean().optional(),
  min_tokens: z.number().int().min(0).optional(),
  skip_special_tokens: z.boolean().optional(),
  spaces_between_special_tokens: z.boolean().optional(),
  truncate_prompt_tokens: z.number().int().min(1).nullish(),
  return_context_logits: z.boolean().optional(),
  detokenize: z.boolean().optional(),
  thinking_token_budget: z.number().int().nullish(),
  add_special_tokens: z.boolean().optional(),
  response_format: z.unknown().optional(),
  disaggregated_params: z.unknown().optional(),
  priority: z.number().min(0).max(1).nullish(),
  conversation_params: z.unknown().optional(),
});
export type TrtllmCompletionRequest = z.infer<typeof TrtllmCompletionRequestSchema>;

/** What a validated request becomes. */
export interface ParsedTrtllmCompletion {
  readonly engineRequest: EngineRequest;
  readonly stream: boolean;
  readonly includeUsage: boolean;
  readonly detokenize: boolean;
}

/** What validation needs to know about the served model. */
export interface TrtllmCompletionContext {
  readonly modelName: string;
  readonly maxSeqLen: number;
  readonly eosTokenIds: readonly number[];
  readonly encode: (text: string, addSpecialTokens: boolean) => number[];
  readonly requestId: string;
}

/**
 * Validates a completion body as `trtllm-serve` does (pydantic first: a 400 whose body is
 * `{"error": "..."}`, then the request's own checks) and builds the engine request. When
 * `max_tokens` is not given, the request may generate up to `max_seq_len`.
 */
export function parseTrtllmCompletion(
  body: unknown,
  ctx: TrtllmCompletionContext,
): ParsedTrtllmCompletion {
  const parsed = TrtllmCompletionRequestSchema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.join(".") ||
      (issue.code === "unrecognized_keys"
        ? (issue as { keys?: string[] }).keys?.join(",") ?? "body"
        : "body");
    const message = issue.code === "unrecognized_keys"
      ? "Extra inputs are not permitted"
      : issue.message;
    throw new DynamoError(
      "invalid_request",
      "validation_error",
      `1 validation error for CompletionRequest\n${field}\n  ${message}`,
    );
  }
  const req = parsed.data;
  if (req.stream_options && !req.stream) {
    throw bad("Stream options can only be defined when stream is true.");
  }
  if (req.suffix) throw bad("suffix is not supported");
  refuseUnmodelled(req);
  const ids = promptIds(req, ctx);
  if (ids.length >= ctx.maxSeqLen) {
    throw bad(
      `The prompt length (${ids.length}) must be smaller than max_seq_len (${ctx.maxSeqLen}).`,
    );
  }
  const maxTokens = req.max_tokens ?? ctx.maxSeqLen - ids.length;
  if (maxTokens < 1) throw bad(`max_tokens must be at least 1, got ${maxTokens}.`);
  if (ids.length + maxTokens > ctx.maxSeqLen) {
    throw bad(
      `The sum of prompt length (${ids.length}) and max_tokens (${maxTokens}) exceeds max_seq_len (${ctx.maxSeqLen}).`,
    );
  }
  const stream = req.stream === true;
  return {
    engineRequest: {
      request_id: ctx.requestId,
      model: ctx.modelName,
      token_ids: ids,
      stop_conditions: {
        max_tokens: maxTokens,
        min_tokens: req.min_tokens ?? 0,
        ignore_eos: req.ignore_eos === true,
        stop_token_ids: req.stop_token_ids ?? [],
      },
      sampling_options: {
        temperature: req.temperature ?? null,
        top_p: req.top_p ?? null,
        top_k: req.top_k === undefined || req.top_k < 1 ? null : req.top_k,
        seed: req.seed ?? null,
      },
      eos_token_ids: [...ctx.eosTokenIds],
    },
    stream,
    // StreamOptions.include_usage defaults to true once stream_options is given.
    includeUsage: stream && req.stream_options !== undefined && req.stream_options !== null &&
      req.stream_options.include_usage !== false,
    detokenize: req.detokenize !== false,
  };
}

function refuseUnmodelled(req: TrtllmCompletionRequest): void {
  const unmodelled: [boolean, string][] = [
    [(req.n ?? 1) !== 1, "n"],
    [(req.best_of ?? 1) > 1, "best_of"],
    [req.echo === true, "echo"],
    [req.logprobs !== undefined && req.logprobs !== null, "logprobs"],
    [req.use_beam_search === true, "use_beam_search"],
    [req.stop !== undefined && req.stop !== null && req.stop.length > 0, "stop"],
  ];
  for (const [used, field] of unmodelled) {
    if (used) throw bad(`The TensorRT-LLM stand-in (dynamo mocker) does not support ${field}.`);
  }
}

function promptIds(req: TrtllmCompletionRequest, ctx: TrtllmCompletionContext): number[] {
  const prompt = req.prompt;
  const add = req.add_special_tokens ?? true;
  if (typeof prompt === "string") return ctx.encode(prompt, add);
  if (prompt.length === 0) throw bad("prompt must not be empty.");
  if (prompt.every((p) => typeof p === "number")) return prompt as number[];
  if (prompt.length > 1) {
    throw bad("The TensorRT-LLM stand-in (dynamo mocker) serves one prompt per request.");
  }
  const only = prompt[0]!;
  return typeof only === "string" ? ctx.encode(only, add) : only;
}

function bad(message: string): DynamoError {
  return new DynamoError("invalid_request", "bad_request", message);
}
