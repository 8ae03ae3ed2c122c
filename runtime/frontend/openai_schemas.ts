import { z } from "zod";

/** Bounds on what one request may ask for; each is part of the API contract. */
export const REQUEST_LIMITS = {
  maxStopStrings: 16,
  maxStopStringChars: 256,
  maxMessages: 4096,
} as const;

const TextPartSchema = z.object({ type: z.literal("text"), text: z.string() });

const MessageContentSchema = z.union([z.string(), z.array(TextPartSchema).min(1)]).nullable();

const MessageSchema = z.object({
  role: z.enum(["system", "developer", "user", "assistant", "tool"]),
  content: MessageContentSchema.optional(),
  name: z.string().optional(),
  tool_calls: z.array(z.unknown()).optional(),
  tool_call_id: z.string().optional(),
  reasoning_content: z.string().nullable().optional(),
});

const StopSchema = z.union([
  z.string().max(REQUEST_LIMITS.maxStopStringChars),
  z.array(z.string().max(REQUEST_LIMITS.maxStopStringChars)).max(REQUEST_LIMITS.maxStopStrings),
]).nullable();

/** Dynamo's `nvext` extension object; fields not used yet are accepted and ignored. */
const NvextSchema = z.object({
  ignore_eos: z.boolean().optional(),
  backend_instance_id: z.number().int().nonnegative().optional(),
  extra_fields: z.array(z.string()).optional(),
  router_config_override: z.object({
    overlap_score_weight: z.number().min(0).optional(),
    router_temperature: z.number().min(0).optional(),
  }).optional(),
}).passthrough();

/** Sampling and stopping fields shared by chat and text completions. */
const commonFields = {
  model: z.string().min(1),
  max_tokens: z.number().int().nonnegative().nullable().optional(),
  temperature: z.number().min(0).max(2).nullable().optional(),
  top_p: z.number().gt(0).max(1).nullable().optional(),
  top_k: z.number().int().min(-1).nullable().optional(),
  n: z.number().int().min(1).nullable().optional(),
  stream: z.boolean().nullable().optional(),
  stream_options: z.object({ include_usage: z.boolean().nullable().optional() }).nullable()
    .optional(),
  stop: StopSchema.optional(),
  seed: z.number().int().nullable().optional(),
  presence_penalty: z.number().min(-2).max(2).nullable().optional(),
  frequency_penalty: z.number().min(-2).max(2).nullable().optional(),
  logprobs: z.union([z.boolean(), z.number()]).nullable().optional(),
  user: z.string().optional(),
  ignore_eos: z.boolean().optional(),
  min_tokens: z.number().int().nonnegative().optional(),
  nvext: NvextSchema.optional(),
};

export const ChatCompletionRequestSchema = z.object({
  ...commonFields,
  messages: z.array(MessageSchema).min(1).max(REQUEST_LIMITS.maxMessages),
  max_completion_tokens: z.number().int().nonnegative().nullable().optional(),
  top_logprobs: z.number().int().nullable().optional(),
  tools: z.array(z.unknown()).optional(),
  tool_choice: z.unknown().optional(),
  chat_template_kwargs: z.record(z.string(), z.unknown()).optional(),
});
export type ChatCompletionRequest = z.infer<typeof ChatCompletionRequestSchema>;

const TokenArraySchema = z.array(z.number().int().nonnegative());

export const CompletionRequestSchema = z.object({
  ...commonFields,
  prompt: z.union([
    z.string(),
    z.array(z.string()).min(1),
    TokenArraySchema.min(1),
    z.array(TokenArraySchema.min(1)).min(1),
  ]),
  echo: z.boolean().nullable().optional(),
  suffix: z.string().nullable().optional(),
  best_of: z.number().int().nullable().optional(),
});
export type CompletionRequest = z.infer<typeof CompletionRequestSchema>;

export type ChatMessageInput = z.infer<typeof MessageSchema>;
