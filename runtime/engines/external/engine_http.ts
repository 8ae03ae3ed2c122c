import { parsePrometheusText, type PromSample, SseParser } from "../../bench/mod.ts";
import { DynamoError } from "../../errors/mod.ts";

/** Largest error body, JSON document or metrics page read from an engine. */
export const MAX_ENGINE_BODY_BYTES = 4 << 20;
/** Largest server-sent event accepted from an engine (one chunk is well under 1 KiB). */
const MAX_ENGINE_EVENT_BYTES = 1 << 20;

/** An error's message, with its cause's (fetch says only "fetch failed" without it). */
export function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : "";
  return `${err.message}${cause}`;
}

/** Reads a body as text, at most `MAX_ENGINE_BODY_BYTES` (an `engine_error` beyond). */
export async function readEngineText(res: Response, engine: string): Promise<string> {
  if (res.body === null) return "";
  const reader = res.body.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.length;
      if (size > MAX_ENGINE_BODY_BYTES) {
        throw new DynamoError(
          "engine_error",
          "engine_body_too_large",
          `${engine} answered with a body over ${MAX_ENGINE_BODY_BYTES} bytes`,
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

/**
 * The message of an engine's error body, whichever shape it has: `{"error": {"message"}}`
 * (vLLM, SGLang's native API), `{"message"}` (TensorRT-LLM's ErrorResponse, older vLLM),
 * `{"error": "..."}` (TensorRT-LLM's validation errors), `{"detail"}` (FastAPI).
 */
export function engineErrorMessage(bodyText: string): string | undefined {
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

/** The DynamoError for an engine's HTTP answer: 4xx `invalid_request`, else `engine_error`. */
export function engineHttpError(engine: string, status: number, bodyText: string): DynamoError {
  const message = engineErrorMessage(bodyText) ?? (bodyText.slice(0, 500) || `HTTP ${status}`);
  if (status >= 400 && status < 500) {
    return new DynamoError("invalid_request", "engine_rejected", message);
  }
  return new DynamoError(
    "engine_error",
    "engine_failed",
    `${engine} failed (HTTP ${status}): ${message}`,
  );
}

/** GETs (or POSTs) `url` and returns its body; a non-2xx answer throws `engineHttpError`. */
export async function fetchEngineText(
  engine: string,
  url: string,
  signal: AbortSignal,
  init: RequestInit = {},
): Promise<string> {
  const res = await fetch(url, { ...init, signal });
  const text = await readEngineText(res, engine);
  if (!res.ok) throw engineHttpError(engine, res.status, text);
  return text;
}

/** `fetchEngineText` parsed as JSON. */
export async function fetchEngineJson(
  engine: string,
  url: string,
  signal: AbortSignal,
): Promise<unknown> {
  return JSON.parse(await fetchEngineText(engine, url, signal));
}

/** `fetchEngineText` parsed as the Prometheus text format. */
export async function fetchEngineMetrics(
  engine: string,
  url: string,
  signal: AbortSignal,
): Promise<PromSample[]> {
  return parsePrometheusText(await fetchEngineText(engine, url, signal));
}

/** Sums the finite samples named `name` (across engines, ranks and other labels). */
export function metricSum(samples: readonly PromSample[], name: string): number | undefined {
  let total: number | undefined;
  for (const s of samples) {
    if (s.name === name && Number.isFinite(s.value)) total = (total ?? 0) + s.value;
  }
  return total;
}

/**
 * POSTs a JSON body that starts a streamed generation. The request reaching nobody is
 * `engine_error`/`engine_unreachable` (an abort rethrows as is); a non-2xx answer is
 * `engineHttpError`.
 */
export async function postEngineStream(
  engine: string,
  url: string,
  body: unknown,
  options: { signal: AbortSignal; headers?: Record<string, string> },
): Promise<ReadableStream<Uint8Array>> {
  let res: Response;
  try {
    res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", ...options.headers },
      body: JSON.stringify(body),
      signal: options.signal,
    });
  } catch (err) {
    if (options.signal.aborted) throw err;
    throw new DynamoError(
      "engine_error",
      "engine_unreachable",
      `Cannot reach ${engine} at ${new URL(url).origin}: ${describeError(err)}`,
      { cause: err },
    );
  }
  if (!res.ok) {
    const text = await readEngineText(res, engine).catch(() => "");
    throw engineHttpError(engine, res.status, text);
  }
  if (res.body === null) {
    throw new DynamoError("engine_error", "bad_engine_output", `${engine} answered with no body`);
  }
  return res.body;
}

/**
 * The `data:` payloads of a server-sent event stream, in order. A connection lost mid-stream
 * is `engine_error`/`engine_connection_lost`; an abort rethrows as is. Stops reading (and
 * cancels the body) when the consumer stops.
 */
export async function* engineSseData(
  engine: string,
  body: ReadableStream<Uint8Array>,
): AsyncGenerator<string> {
  const parser = new SseParser({ maxEventBytes: MAX_ENGINE_EVENT_BYTES });
  const reader = body.getReader();
  try {
    for (;;) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await reader.read();
      } catch (err) {
        if (err instanceof DOMException && err.name === "AbortError") throw err;
        throw new DynamoError(
          "engine_error",
          "engine_connection_lost",
          `Lost the connection to ${engine} mid-response: ${describeError(err)}`,
          { cause: err },
        );
      }
      if (chunk.done) return;
      for (const event of parser.push(chunk.value)) yield event.data;
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

/**
 * Parses one streamed chunk; an error object inside a 200 stream becomes `engineHttpError`
 * with its `code`, else with `statusWithoutCode`.
 */
export function parseEngineChunk(
  engine: string,
  data: string,
  statusWithoutCode = 500,
): Record<string, unknown> {
  let chunk: unknown;
  try {
    chunk = JSON.parse(data);
  } catch {
    throw new DynamoError(
      "engine_error",
      "bad_engine_output",
      `${engine} sent a chunk that is not JSON`,
    );
  }
  if (chunk === null || typeof chunk !== "object" || Array.isArray(chunk)) {
    throw new DynamoError(
      "engine_error",
      "bad_engine_output",
      `${engine} sent a chunk that is not an object`,
    );
  }
  const c = chunk as Record<string, unknown>;
  if (c["error"] !== undefined || c["object"] === "error") {
    const error = c["error"];
    const code = Number(
      error !== null && typeof error === "object"
        ? (error as Record<string, unknown>)["code"]
        : c["code"],
    );
    throw engineHttpError(
      engine,
      Number.isInteger(code) && code >= 400 ? code : statusWithoutCode,
      data,
    );
  }
  return c;
}
