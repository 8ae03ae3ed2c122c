import { DynamoError } from "../../errors/mod.ts";
import type {
  CompletionUsage,
  EngineOutput,
  EngineRequest,
  FinishReason,
} from "../../protocol/mod.ts";
import { engineSseData, parseEngineChunk, postEngineStream } from "../external/mod.ts";

const ENGINE = "SGLang";

/**
 * The native `/generate` body for one engine request (`GenerateReqInput`,
 * `sglang/srt/managers/io_struct.py`): the frontend's token ids as `input_ids` (SGLang
 * skips its own tokenization), streamed, with the sampling and stop options under SGLang's
 * names (`SamplingParams`, `sglang/srt/sampling/sampling_params.py`). Options the request
 * leaves unset are left out, so SGLang applies the model's defaults. The request id is
 * SGLang's `rid` (it names the request in SGLang's own log and abort messages).
 */
export function sglangGenerateBody(request: EngineRequest): Record<string, unknown> {
  const { stop_conditions: stop, sampling_options: sampling } = request;
  const params: Record<string, unknown> = { max_new_tokens: stop.max_tokens };
  if (stop.min_tokens > 0) params["min_new_tokens"] = stop.min_tokens;
  if (stop.ignore_eos) params["ignore_eos"] = true;
  if (stop.stop_token_ids.length > 0) params["stop_token_ids"] = stop.stop_token_ids;
  if (sampling.temperature !== null) params["temperature"] = sampling.temperature;
  if (sampling.top_p !== null) params["top_p"] = sampling.top_p;
  if (sampling.top_k !== null) params["top_k"] = sampling.top_k;
  // SGLang's per-request seed; older versions refuse the field, so only when asked.
  if (sampling.seed !== null) params["sampling_seed"] = sampling.seed;
  return {
    input_ids: request.token_ids,
    sampling_params: params,
    stream: true,
    rid: request.request_id,
  };
}

interface SglangMetaInfo {
  readonly finish_reason?: {
    readonly type?: string;
    readonly message?: string;
    readonly status_code?: number;
  } | null;
  readonly prompt_tokens?: number;
  readonly completion_tokens?: number;
  readonly cached_tokens?: number;
}

/**
 * Tells the new tokens of one streamed `/generate` chunk. SGLang sends the output so far
 * (`output_ids` cumulative, its default) or, with `--incremental-streaming-output` (older:
 * `--stream-output`), only the new ones (`OutputProcessor.handle_batch_output`,
 * `sglang/srt/managers/tokenizer_manager_components/output_processor.py`). A chunk is
 * cumulative when it holds as many ids as `meta_info.completion_tokens` counts (in the
 * incremental form that is true only of a first chunk, where both readings agree), or,
 * without that count, when it starts with everything seen so far.
 */
export class SglangOutputTracker {
  readonly #seen: number[] = [];

  /** All tokens taken so far. */
  get seen(): readonly number[] {
    return this.#seen;
  }

  /** The tokens of `outputIds` not taken yet. */
  take(outputIds: readonly number[], completionTokens: number | undefined): number[] {
    const seen = this.#seen;
    const cumulative = typeof completionTokens === "number"
      ? outputIds.length === completionTokens && outputIds.length >= seen.length
      : outputIds.length >= seen.length && seen.every((t, i) => outputIds[i] === t);
    const fresh = cumulative ? outputIds.slice(seen.length) : [...outputIds];
    for (const t of fresh) seen.push(t);
    return fresh;
  }
}

/**
 * Streams one request through SGLang's `/generate`. Each chunk's new `output_ids` become an
 * output item; the chunk whose `meta_info.finish_reason` is set ends the stream, with usage
 * from `meta_info` (`prompt_tokens`, `completion_tokens`, `cached_tokens`, the prefix-cache
 * hit). HTTP 4xx is `invalid_request`, and so is an error chunk before any token: SGLang
 * reports a request it refuses (a prompt over the context length) as a `ValueError` inside
 * the already started 200 stream (`generate_request`, `sglang/srt/entrypoints/http_server.py`).
 * An abort with a 4xx `status_code` is `invalid_request` too. 5xx, a lost connection or a
 * later error is `engine_error`. Aborting `signal` aborts the HTTP call, which SGLang sees as
 * a disconnect and aborts the request.
 */
export async function* streamSglangGenerate(
  baseUrl: string,
  request: EngineRequest,
  options: { signal: AbortSignal },
): AsyncGenerator<EngineOutput> {
  const body = await postEngineStream(ENGINE, `${baseUrl}/generate`, sglangGenerateBody(request), {
    signal: options.signal,
  });
  const tracker = new SglangOutputTracker();
  for await (const data of engineSseData(ENGINE, body)) {
    if (data === "[DONE]") break;
    const chunk = parseEngineChunk(ENGINE, data, tracker.seen.length === 0 ? 400 : 500);
    const meta = (chunk["meta_info"] ?? {}) as SglangMetaInfo;
    const ids = chunk["output_ids"];
    if (!Array.isArray(ids)) {
      throw new DynamoError(
        "engine_error",
        "no_token_ids",
        "SGLang answered without output_ids: the worker needs SGLang's native /generate with token ids",
      );
    }
    const fresh = tracker.take(ids as number[], meta.completion_tokens);
    const finish = meta.finish_reason;
    if (finish === undefined || finish === null) {
      if (fresh.length > 0) yield { token_ids: fresh };
      continue;
    }
    yield {
      token_ids: fresh,
      finish_reason: toFinishReason(finish, tracker.seen.length),
      completion_usage: toUsage(meta, request.token_ids.length, tracker.seen.length),
    };
    return;
  }
  throw new DynamoError(
    "engine_error",
    "stream_incomplete",
    "SGLang ended the response stream without a finish reason",
  );
}

function toUsage(meta: SglangMetaInfo, promptTokens: number, streamed: number): CompletionUsage {
  const cached = meta.cached_tokens;
  return {
    prompt_tokens: meta.prompt_tokens ?? promptTokens,
    completion_tokens: meta.completion_tokens ?? streamed,
    ...(typeof cached === "number" ? { prompt_tokens_details: { cached_tokens: cached } } : {}),
  };
}

/**
 * SGLang's finish reasons (`BaseFinishReason.to_json`, `sglang/srt/managers/schedule_batch.py`:
 * `{"type": "length" | "stop" | "abort", ...}`) as the worker's.
 */
function toFinishReason(
  finish: NonNullable<SglangMetaInfo["finish_reason"]>,
  streamed: number,
): FinishReason {
  switch (finish.type) {
    case "length":
      return "length";
    case "abort": {
      const status = finish.status_code ?? 0;
      if (status >= 400 && status < 500 && streamed === 0) {
        throw new DynamoError(
          "invalid_request",
          "engine_rejected",
          finish.message ?? "SGLang refused the request",
        );
      }
      return "cancelled";
    }
    default:
      return "stop";
  }
}
