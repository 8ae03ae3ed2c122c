import { z } from "zod";
import { DynamoError } from "../../errors/mod.ts";
import type { EngineRequest } from "../../protocol/mod.ts";

const TokenIds = z.array(z.number().int().min(0));

/** `SamplingParams` (`sglang/srt/sampling/sampling_params.py`), the fields the stand-in models. */
const SamplingParamsSchema = z.looseObject({
  max_new_tokens: z.number().int().min(0).nullish(),
  min_new_tokens: z.number().int().min(0).nullish(),
  temperature: z.number().min(0).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  top_k: z.number().int().nullish(),
  stop_token_ids: TokenIds.nullish(),
  ignore_eos: z.boolean().nullish(),
  sampling_seed: z.number().int().nullish(),
  n: z.number().int().nullish(),
  stop: z.union([z.string(), z.array(z.string())]).nullish(),
});

/**
 * The `/generate` body the stand-in accepts: SGLang's `GenerateReqInput`
 * (`sglang/srt/managers/io_struct.py`) for one prompt, as text or token ids. Unknown fields
 * are ignored.
 */
export const GenerateRequestSchema = z.looseObject({
  text: z.union([z.string(), z.array(z.string())]).nullish(),
  input_ids: z.union([TokenIds, z.array(TokenIds)]).nullish(),
  sampling_params: SamplingParamsSchema.nullish(),
  stream: z.boolean().nullish(),
  rid: z.string().nullish(),
  return_logprob: z.boolean().nullish(),
});

/** What a validated `/generate` body becomes. */
export interface ParsedGenerate {
  readonly engineRequest: EngineRequest;
  readonly rid: string;
  readonly stream: boolean;
  readonly maxNewTokens: number;
}

/** What validation needs to know about the served model. */
export interface GenerateContext {
  readonly servedModelName: string;
  readonly contextLength: number;
  readonly eosTokenIds: readonly number[];
  readonly encode: (text: string) => number[];
  /** A fresh request id for a body that brings no `rid`. */
  readonly newRid: () => string;
}

/**
 * Checks the body's shape (a FastAPI validation error: HTTP 400, before any stream starts).
 * Throws `invalid_request` with FastAPI's style of message.
 */
export function parseGenerateShape(body: unknown): z.infer<typeof GenerateRequestSchema> {
  const parsed = GenerateRequestSchema.safeParse(body);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  throw new DynamoError(
    "invalid_request",
    "bad_request",
    `1 validation error for GenerateReqInput\n${
      issue.path.join(".") || "body"
    }\n  ${issue.message}`,
  );
}

/**
 * Validates a `/generate` request as SGLang's tokenizer manager does
 * (`_validate_one_request`, `sglang/srt/managers/tokenizer_manager.py`) and builds the
 * engine request. Errors are `invalid_request` with SGLang's messages; SGLang raises them
 * as `ValueError`, which a streamed request receives inside its 200 stream.
 */
export function buildGenerate(
  req: z.infer<typeof GenerateRequestSchema>,
  ctx: GenerateContext,
): ParsedGenerate {
  const p = req.sampling_params ?? {};
  refuseUnmodelled(req, p);
  const ids = promptIds(req, ctx);
  const maxNewTokens = p.max_new_tokens ?? 128;
  if (ids.length >= ctx.contextLength) {
    throw bad(
      `The input (${ids.length} tokens) is longer than the model's context length (${ctx.contextLength} tokens).`,
    );
  }
  if (ids.length + maxNewTokens > ctx.contextLength) {
    throw bad(
      `Requested token count exceeds the model's maximum context length of ${ctx.contextLength} tokens. You requested a total of ${
        ids.length + maxNewTokens
      } tokens: ${ids.length} tokens from the input messages and ${maxNewTokens} tokens for the completion. Please reduce the number of tokens in the input messages or the completion to fit within the limit.`,
    );
  }
  const minNew = p.min_new_tokens ?? 0;
  if (minNew > maxNewTokens) {
    throw bad(`min_new_tokens must be in [0, max_new_tokens(${maxNewTokens})], got ${minNew}.`);
  }
  const topK = p.top_k ?? -1;
  if (topK === 0 || topK < -1) {
    throw bad(`top_k must be -1 (disable) or at least 1, got ${topK}.`);
  }
  const rid = req.rid ?? ctx.newRid();
  return {
    engineRequest: {
      request_id: rid,
      model: ctx.servedModelName,
      token_ids: ids,
      stop_conditions: {
        max_tokens: maxNewTokens,
        min_tokens: minNew,
        ignore_eos: p.ignore_eos === true,
        stop_token_ids: p.stop_token_ids ?? [],
      },
      sampling_options: {
        temperature: p.temperature ?? null,
        top_p: p.top_p ?? null,
        top_k: topK === -1 ? null : topK,
        seed: p.sampling_seed ?? null,
      },
      eos_token_ids: [...ctx.eosTokenIds],
    },
    rid,
    stream: req.stream === true,
    maxNewTokens,
  };
}

function refuseUnmodelled(
  req: z.infer<typeof GenerateRequestSchema>,
  p: z.infer<typeof SamplingParamsSchema>,
): void {
  const unmodelled: [boolean, string][] = [
    [req.return_logprob === true, "return_logprob"],
    [(p.n ?? 1) !== 1, "sampling_params.n"],
    [p.stop !== undefined && p.stop !== null && p.stop.length > 0, "sampling_params.stop"],
  ];
  for (const [used, field] of unmodelled) {
    if (used) throw bad(`The SGLang stand-in (dynamo mocker) does not support ${field}.`);
  }
}

function promptIds(req: z.infer<typeof GenerateRequestSchema>, ctx: GenerateContext): number[] {
  const ids = req.input_ids;
  if (ids !== undefined && ids !== null) {
    if (ids.length > 0 && Array.isArray(ids[0])) {
      throw bad("The SGLang stand-in (dynamo mocker) serves one prompt per request.");
    }
    if (ids.length === 0) throw bad("input_ids cannot be empty.");
    return ids as number[];
  }
  const text = req.text;
  if (text === undefined || text === null) {
    throw bad("Either text, input_ids or input_embeds should be provided.");
  }
  if (Array.isArray(text)) {
    throw bad("The SGLang stand-in (dynamo mocker) serves one prompt per request.");
  }
  return ctx.encode(text);
}

function bad(message: string): DynamoError {
  return new DynamoError("invalid_request", "bad_request", message);
}
