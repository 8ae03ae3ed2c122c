import { DynamoError } from "../../errors/mod.ts";
import type {
  CompletionUsage,
  EngineOutput,
  EngineRequest,
  FinishReason,
} from "../../protocol/mod.ts";
import { engineSseData, parseEngineChunk, postEngineStream } from "../external/mod.ts";

const ENGINE = "TensorRT-LLM";

/**
 * The `/v1/completions` body for one engine request: the frontend's token ids as a
 * token-id prompt, streamed with `detokenize: false` so each chunk carries its new token ids
 * (`token_ids`, `completion_stream_post_processor` in
 * `tensorrt_llm/serve/postprocess_handlers.py`) and nothing is detokenized, usage at the
 * end, and the sampling and stop options under TensorRT-LLM's names (`CompletionRequest`,
 * `tensorrt_llm/serve/openai_protocol.py`). That model forbids unknown fields, so only
 * fields it declares are sent, and unset options are left out.
 */
export function trtllmCompletionBody(
  request: EngineRequest,
  model: string,
): Record<string, unknown> {
  const { stop_conditions: stop, sampling_options: sampling } = request;
  const body: Record<string, unknown> = {
    model,
    prompt: request.token_ids,
    max_tokens: stop.max_tokens,
    stream: true,
    stream_options: { include_usage: true },
    detokenize: false,
  };
  if (stop.min_tokens > 0) body["min_tokens"] = stop.min_tokens;
  if (stop.ignore_eos) body["ignore_eos"] = true;
  if (stop.stop_token_ids.length > 0) body["stop_token_ids"] = stop.stop_token_ids;
  if (sampling.temperature !== null) body["temperature"] = sampling.temperature;
  if (sampling.top_p !== null) body["top_p"] = sampling.top_p;
  if (sampling.top_k !== null) body["top_k"] = sampling.top_k;
  if (sampling.seed !== null) body["seed"] = sampling.seed;
  return body;
}

interface TrtllmChunk {
  readonly choices?: readonly {
    readonly token_ids?: readonly number[] | null;
    readonly finish_reason?: string | null;
  }[];
  readonly usage?: {
    readonly prompt_tokens?: number;
    readonly completion_tokens?: number;
    readonly prompt_tokens_details?: { readonly cached_tokens?: number | null } | null;
  } | null;
}

/**
 * Streams one request through `trtllm-serve`'s `/v1/completions`. Each chunk's `token_ids`
 * becomes an output item; TensorRT-LLM sends the finish reason on the last choice chunk and
 * the usage (with `prompt_tokens_details.cached_tokens` in current versions) on a choice-less
 * chunk after it, so the last item waits for that usage (or `[DONE]`). HTTP 4xx is
 * `invalid_request`; 5xx, a lost connection or an error inside the stream is `engine_error`.
 * Aborting `signal` aborts the HTTP call; `trtllm-serve` notices the disconnect and aborts
 * the request (`OpenAIServer.await_disconnected`).
 */
export async function* streamTrtllmCompletion(
  baseUrl: string,
  request: EngineRequest,
  options: { model: string; signal: AbortSignal },
): AsyncGenerator<EngineOutput> {
  const body = await postEngineStream(
    ENGINE,
    `${baseUrl}/v1/completions`,
    trtllmCompletionBody(request, options.model),
    { signal: options.signal },
  );
  let pending: { tokens: readonly number[]; finish: FinishReason } | undefined;
  let completionTokens = 0;
  const finish = (usage: CompletionUsage | undefined): EngineOutput => ({
    token_ids: pending!.tokens,
    finish_reason: pending!.finish,
    completion_usage: usage ??
      { prompt_tokens: request.token_ids.length, completion_tokens: completionTokens },
  });
  for await (const data of engineSseData(ENGINE, body)) {
    if (data === "[DONE]") break;
    const chunk = parseEngineChunk(ENGINE, data) as TrtllmChunk;
    const usage = toUsage(chunk.usage);
    if (usage !== undefined && pending !== undefined) {
      yield finish(usage);
      return;
    }
    const choice = chunk.choices?.[0];
    if (choice === undefined || pending !== undefined) continue;
    if (!Array.isArray(choice.token_ids)) {
      throw new DynamoError(
        "engine_error",
        "no_token_ids",
        "TensorRT-LLM answered without token_ids: the worker needs a trtllm-serve that honours detokenize=false",
      );
    }
    const tokens = choice.token_ids;
    completionTokens += tokens.length;
    const reason = toFinishReason(choice.finish_reason);
    if (reason !== undefined) pending = { tokens, finish: reason };
    else if (tokens.length > 0) yield { token_ids: tokens };
  }
  if (pending !== undefined) {
    yield finish(undefined);
    return;
  }
  throw new DynamoError(
    "engine_error",
    "stream_incomplete",
    "TensorRT-LLM ended the response stream without a finish reason",
  );
}

function toUsage(usage: TrtllmChunk["usage"]): CompletionUsage | undefined {
  if (usage === undefined || usage === null) return undefined;
  const cached = usage.prompt_tokens_details?.cached_tokens;
  return {
    prompt_tokens: usage.prompt_tokens ?? 0,
    completion_tokens: usage.completion_tokens ?? 0,
    ...(typeof cached === "number" ? { prompt_tokens_details: { cached_tokens: cached } } : {}),
  };
}

/**
 * TensorRT-LLM's finish reasons (`CompletionOutput.finish_reason`,
 * `tensorrt_llm/executor/result.py`: stop, length, timeout, cancelled) as the worker's.
 */
function toFinishReason(reason: string | null | undefined): FinishReason | undefined {
  switch (reason) {
    case undefined:
    case null:
      return undefined;
    case "length":
      return "length";
    case "cancelled":
      return "cancelled";
    case "timeout":
      return "error";
    default:
      return "stop";
  }
}
