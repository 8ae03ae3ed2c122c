import { SseParser } from "../../bench/mod.ts";
import { DynamoError } from "../../errors/mod.ts";
import type {
  CompletionUsage,
  EngineOutput,
  EngineRequest,
  FinishReason,
} from "../../protocol/mod.ts";

/** Largest error body or non-streamed JSON read from vLLM. */
const MAX_BODY_BYTES = 1 << 20;
/** Largest SSE event accepted from vLLM (one chunk of a few tokens is well under 1 KiB). */
const MAX_EVENT_BYTES = 1 << 20;

/**
 * The `/v1/completions` body for one engine request: the frontend's token ids as a
 * token-id prompt (`prompt: list[int]`), streamed with `return_token_ids` so each chunk
 * carries its token ids (`token_ids`) and the text is never re-tokenized, usage at the end
 * (`stream_options.include_usage`), and the sampling and stop options under vLLM's names.
 * Field names as in `CompletionRequest` (`vllm/entrypoints/openai/completion/protocol.py`).
 * Options the request leaves unset are left out, so vLLM applies the model's defaults. The
 * request id travels in the `X-Request-Id` header, which vLLM prefers for its own id.
 */
export function vllmCompletionBody(
  request: EngineRequest,
  servedModelName: string,
): Record<string, unknown> {
  const { stop_conditions: stop, sampling_options: sampling } = request;
  const body: Record<string, unknown> = {
    model: servedModelName,
    prompt: request.token_ids,
    max_tokens: stop.max_tokens,
    stream: true,
    stream_options: { include_usage: true },
    return_token_ids: true,
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

/**
 * Streams one request through vLLM's `/v1/completions`. Each chunk's `token_ids` becomes an
 * output item; vLLM sends the finish reason on the last choice chunk and the usage
 * (with `prompt_tokens_details.cached_tokens`) on a choice-less chunk after it, so the last
 * item waits for that usage (or `[DONE]`). HTTP 4xx is `invalid_request`; 5xx, a lost
 * connection or an error inside the stream is `engine_error`. Aborting `signal` aborts the
 * HTTP call, which vLLM sees as a disconnect and aborts the request.
 */
export async function* streamVllmCompletion(
  baseUrl: string,
  request: EngineRequest,
  options: { servedModelName: string; signal: AbortSignal },
): AsyncGenerator<EngineOutput> {
  const res = await post(baseUrl, request, options);
  if (res.body === null) {
    throw new DynamoError("engine_error", "bad_engine_output", "vLLM answered with no body");
  }
  const parser = new SseParser({ maxEventBytes: MAX_EVENT_BYTES });
  let pending: { tokens: number[]; finish: FinishReason } | undefined;
  let completionTokens = 0;
  const finish = (usage: CompletionUsage | undefined): EngineOutput => ({
    token_ids: pending!.tokens,
    finish_reason: pending!.finish,
    completion_usage: usage ?? {
      prompt_tokens: request.token_ids.length,
      completion_tokens: completionTokens,
    },
  });
  const reader = res.body.getReader();
  try {
    for (;;) {
      const { done, value } = await readOrThrow(reader);
      if (done) break;
      for (const event of parser.push(value)) {
        if (event.data === "[DONE]") {
          if (pending !== undefined) yield finish(undefined);
          return;
        }
        const chunk = parseChunk(event.data);
        const usage = toUsage(chunk.usage);
        if (usage !== undefined && pending !== undefined) {
          yield finish(usage);
          return;
        }
        const choice = chunk.choices?.[0];
        if (choice === undefined || pending !== undefined) continue;
        if (!Array.isArray(choice.token_ids)) {
          // A vLLM older than 0.10.2 ignores return_token_ids and sends text only.
          throw new DynamoError(
            "engine_error",
            "no_token_ids",
            "vLLM answered without token_ids: the worker needs a vLLM that supports return_token_ids (0.10.2 or later)",
          );
        }
        const tokens = choice.token_ids;
        completionTokens += tokens.length;
        const reason = toFinishReason(choice.finish_reason);
        if (reason !== undefined) pending = { tokens, finish: reason };
        else if (tokens.length > 0) yield { token_ids: tokens };
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
  if (pending !== undefined) {
    yield finish(undefined);
    return;
  }
  throw new DynamoError(
    "engine_error",
    "stream_incomplete",
    "vLLM ended the response stream without a finish reason",
  );
}

async function post(
  baseUrl: string,
  request: EngineRequest,
  options: { servedModelName: string; signal: AbortSignal },
): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(`${baseUrl}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-request-id": request.request_id },
      body: JSON.stringify(vllmCompletionBody(request, options.servedModelName)),
      signal: options.signal,
    });
  } catch (err) {
    if (options.signal.aborted) throw err;
    throw new DynamoError(
      "engine_error",
      "engine_unreachable",
      `Cannot reach vLLM at ${baseUrl}: ${err instanceof Error ? err.message : String(err)}${
        err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : ""
      }`,
      { cause: err },
    );
  }
  if (res.ok) return res;
  const text = await readText(res).catch(() => "");
  throw httpError(res.status, text);
}

/** The DynamoError for a vLLM answer with this status and body. */
export function httpError(status: number, bodyText: string): DynamoError {
  const message = errorMessage(bodyText) ?? (bodyText.slice(0, 500) || `HTTP ${status}`);
  if (status >= 400 && status < 500) {
    return new DynamoError("invalid_request", "engine_rejected", message);
  }
  return new DynamoError(
    "engine_error",
    "engine_failed",
    `vLLM failed (HTTP ${status}): ${message}`,
  );
}

/** vLLM's error bodies: `{"error": {message}}` (current), `{"message"}` (older), `{"detail"}`. */
function errorMessage(bodyText: string): string | undefined {
  try {
    const body = JSON.parse(bodyText) as Record<string, unknown>;
    const error = body["error"];
    if (error !== null && typeof error === "object") {
      const m = (error as Record<string, unknown>)["message"];
      if (typeof m === "string") return m;
    }
    if (typeof error === "string") return error;
    if (typeof body["message"] === "string") return body["message"];
    if (body["detail"] !== undefined) return JSON.stringify(body["detail"]).slice(0, 500);
  } catch {
    // Not JSON.
  }
  return undefined;
}

interface VllmChunk {
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

function parseChunk(data: string): VllmChunk {
  let chunk: Record<string, unknown>;
  try {
    chunk = JSON.parse(data);
  } catch {
    throw new DynamoError(
      "engine_error",
      "bad_engine_output",
      "vLLM sent a chunk that is not JSON",
    );
  }
  if (chunk["error"] !== undefined || chunk["object"] === "error") {
    // An error inside a 200 stream (vLLM's create_streaming_error_response).
    const code = Number((chunk["error"] as Record<string, unknown> | undefined)?.["code"]);
    throw httpError(Number.isInteger(code) && code >= 400 ? code : 500, data);
  }
  return chunk as VllmChunk;
}

function toUsage(usage: VllmChunk["usage"]): CompletionUsage | undefined {
  if (usage === undefined || usage === null) return undefined;
  const cached = usage.prompt_tokens_details?.cached_tokens;
  return {
    prompt_tokens: usage.prompt_tokens ?? 0,
    completion_tokens: usage.completion_tokens ?? 0,
    ...(typeof cached === "number" ? { prompt_tokens_details: { cached_tokens: cached } } : {}),
  };
}

/** vLLM's finish reasons (`vllm/v1/engine/__init__.py` FinishReason) as the worker's. */
function toFinishReason(reason: string | null | undefined): FinishReason | undefined {
  switch (reason) {
    case undefined:
    case null:
      return undefined;
    case "length":
      return "length";
    case "abort":
      return "cancelled";
    case "error":
      return "error";
    default:
      return "stop";
  }
}

async function readOrThrow(
  reader: ReadableStreamDefaultReader<Uint8Array>,
): Promise<ReadableStreamReadResult<Uint8Array>> {
  try {
    return await reader.read();
  } catch (err) {
    if (err instanceof DOMException && err.name === "AbortError") throw err;
    throw new DynamoError(
      "engine_error",
      "engine_connection_lost",
      `Lost the connection to vLLM mid-response: ${
        err instanceof Error ? err.message : String(err)
      }`,
      { cause: err },
    );
  }
}

/** Reads a body as text, at most `MAX_BODY_BYTES`. */
export async function readText(res: Response): Promise<string> {
  if (res.body === null) return "";
  const reader = res.body.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.length;
      if (size > MAX_BODY_BYTES) {
        throw new DynamoError(
          "engine_error",
          "engine_body_too_large",
          `vLLM answered with a body over ${MAX_BODY_BYTES} bytes`,
        );
      }
      parts.push(value);
    }
  } finally {
    reader.cancel().catch(() => {});
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return new TextDecoder().decode(all);
}
