import type { Clock } from "../util/mod.ts";
import { SseParser } from "./sse_parser.ts";

/** What one streamed request produced, as the client saw it. */
export interface StreamOutcome {
  /** `cancelled`: the run ended (--duration) while it was in flight; not a server error. */
  readonly status: "ok" | "error" | "cancelled";
  /**
   * Why it failed: `http_<status>`, `timeout` (the per-request deadline), `connection`
   * (refused, reset, closed mid-stream), `stream_error` (an error event in the stream),
   * `invalid_stream` (not parseable), `incomplete` (the stream ended before it finished).
   */
  readonly errorType?: string;
  readonly errorMessage?: string;
  readonly startMs: number;
  readonly endMs: number;
  /** When the first chunk carrying output text arrived. */
  readonly firstTokenMs?: number;
  /** Arrival time of every chunk carrying output text, first included. */
  readonly chunkTimesMs: readonly number[];
  /** The answer's text (only when asked for: multi-turn sessions need it). */
  readonly text: string;
  /** From the final usage chunk (`stream_options.include_usage`), when the server sent one. */
  readonly usage?: {
    readonly promptTokens: number;
    readonly completionTokens: number;
    readonly cachedTokens?: number;
  };
  /** The decode worker's instance id in hex (Dynamo's `nvext.worker_id`), when returned. */
  readonly worker?: string;
}

export interface StreamRequest {
  /** The endpoint's full URL, e.g. `http://127.0.0.1:8000/v1/completions`. */
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  /** The JSON body, already serialised (so serialising is not timed). */
  readonly body: string;
}

export interface StreamClientDeps {
  readonly fetch: typeof fetch;
  readonly clock: Pick<Clock, "nowMs">;
}

/** Most bytes of an error response kept for its message. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;

interface Progress {
  firstTokenMs: number | undefined;
  readonly chunkTimesMs: number[];
  text: string;
  usage: StreamOutcome["usage"];
  worker: string | undefined;
  /** A finish_reason arrived (a usage chunk and [DONE] may still follow). */
  finished: boolean;
  /** `[DONE]` arrived: nothing more will. */
  done: boolean;
  error: { type: string; message: string } | undefined;
}

/**
 * Sends one streaming completion and records, as chunks arrive, the first-token time and
 * each text chunk's arrival time. It never throws: every failure becomes an outcome with
 * an error type. `signal` cancels it (status `cancelled`); `timeoutMs` bounds it whole.
 */
export async function streamCompletion(
  deps: StreamClientDeps,
  request: StreamRequest,
  options: { timeoutMs: number; signal?: AbortSignal; keepText?: boolean },
): Promise<StreamOutcome> {
  const deadline = new AbortController();
  const timer = setTimeout(
    () => deadline.abort(new DOMException("Request timed out", "TimeoutError")),
    options.timeoutMs,
  );
  const signal = options.signal === undefined
    ? deadline.signal
    : AbortSignal.any([options.signal, deadline.signal]);
  const p: Progress = {
    firstTokenMs: undefined,
    chunkTimesMs: [],
    text: "",
    usage: undefined,
    worker: undefined,
    finished: false,
    done: false,
    error: undefined,
  };
  const startMs = deps.clock.nowMs();
  try {
    const res = await deps.fetch(request.url, {
      method: "POST",
      headers: request.headers,
      body: request.body,
      signal,
    });
    if (!res.ok) {
      p.error = { type: `http_${res.status}`, message: await errorMessage(res) };
    } else if ((res.headers.get("content-type") ?? "").includes("text/event-stream")) {
      await readEvents(deps, res.body!, p, options.keepText === true);
    } else {
      // A server that ignored `stream: true`: the whole answer is one chunk.
      const json = await res.json() as Record<string, unknown>;
      const now = deps.clock.nowMs();
      onJson(json, now, p, options.keepText === true);
      if (p.error === undefined) p.finished = true;
    }
  } catch (err) {
    if (options.signal?.aborted) {
      return outcome(p, startMs, deps.clock.nowMs(), "cancelled");
    }
    p.error = deadline.signal.aborted
      ? { type: "timeout", message: `No complete answer within ${options.timeoutMs} ms` }
      : err instanceof SyntaxError
      ? { type: "invalid_stream", message: err.message }
      : { type: "connection", message: err instanceof Error ? err.message : String(err) };
  } finally {
    clearTimeout(timer);
  }
  const endMs = deps.clock.nowMs();
  if (p.error === undefined && !p.finished) {
    p.error = { type: "incomplete", message: "The stream ended before a finish_reason or [DONE]" };
  }
  return outcome(p, startMs, endMs, p.error === undefined ? "ok" : "error");
}

function outcome(
  p: Progress,
  startMs: number,
  endMs: number,
  status: StreamOutcome["status"],
): StreamOutcome {
  return {
    status,
    errorType: status === "error" ? p.error?.type : undefined,
    errorMessage: status === "error" ? p.error?.message : undefined,
    startMs,
    endMs,
    firstTokenMs: p.firstTokenMs,
    chunkTimesMs: p.chunkTimesMs,
    text: p.text,
    usage: p.usage,
    worker: p.worker,
  };
}

async function readEvents(
  deps: StreamClientDeps,
  body: ReadableStream<Uint8Array>,
  p: Progress,
  keepText: boolean,
): Promise<void> {
  const parser = new SseParser();
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      // Every event of one read arrived together: they share its arrival time.
      const now = deps.clock.nowMs();
      const events = done ? parser.end() : parser.push(value);
      for (const ev of events) {
        if (ev.data === "[DONE]") {
          p.done = true;
          p.finished = true;
          continue;
        }
        let json: Record<string, unknown>;
        try {
          json = JSON.parse(ev.data) as Record<string, unknown>;
        } catch {
          p.error = { type: "invalid_stream", message: `Not JSON: ${ev.data.slice(0, 200)}` };
          return;
        }
        onJson(json, now, p, keepText);
        if (p.error !== undefined) return;
      }
      if (done || p.done) return;
    }
  } finally {
    // Stop reading (and let the server see the disconnect) when we leave early.
    await reader.cancel().catch(() => {});
  }
}

/** Applies one chunk (or a whole non-streamed answer) to the request's progress. */
function onJson(json: Record<string, unknown>, now: number, p: Progress, keepText: boolean): void {
  const error = json["error"];
  if (error !== undefined && error !== null) {
    const e = error as { message?: unknown };
    p.error = {
      type: "stream_error",
      message: typeof e.message === "string" ? e.message : JSON.stringify(error),
    };
    return;
  }
  const choices = json["choices"];
  const choice = Array.isArray(choices) ? choices[0] as Record<string, unknown> : undefined;
  if (choice !== undefined) {
    const delta = (choice["delta"] ?? choice["message"]) as Record<string, unknown> | undefined;
    const text = delta !== undefined
      ? (delta["content"] ?? delta["reasoning_content"])
      : choice["text"];
    if (typeof text === "string" && text !== "") {
      p.firstTokenMs ??= now;
      p.chunkTimesMs.push(now);
      if (keepText) p.text += text;
    }
    const finish = choice["finish_reason"];
    if (finish !== undefined && finish !== null) p.finished = true;
  }
  const usage = json["usage"] as Record<string, unknown> | null | undefined;
  if (usage !== undefined && usage !== null && typeof usage["prompt_tokens"] === "number") {
    const details = usage["prompt_tokens_details"] as Record<string, unknown> | null | undefined;
    const cached = details?.["cached_tokens"];
    p.usage = {
      promptTokens: usage["prompt_tokens"],
      completionTokens: Number(usage["completion_tokens"] ?? 0),
      cachedTokens: typeof cached === "number" ? cached : undefined,
    };
  }
  const nvext = json["nvext"] as { worker_id?: { decode_worker_id?: unknown } } | undefined;
  const worker = nvext?.worker_id?.decode_worker_id;
  if (typeof worker === "number") p.worker = worker.toString(16);
}

async function errorMessage(res: Response): Promise<string> {
  let text = "";
  try {
    const reader = res.body?.getReader();
    const dec = new TextDecoder();
    while (reader !== undefined && text.length < MAX_ERROR_BODY_BYTES) {
      const { done, value } = await reader.read();
      if (done) break;
      text += dec.decode(value, { stream: true });
    }
    await reader?.cancel().catch(() => {});
  } catch {
    // The status alone will do.
  }
  try {
    const msg = (JSON.parse(text) as { error?: { message?: unknown } }).error?.message;
    if (typeof msg === "string") return `${res.status}: ${msg}`;
  } catch {
    // Not an OpenAI error envelope.
  }
  return `${res.status}: ${text.slice(0, 200) || res.statusText}`;
}

/**
 * Inter-token gaps of one request: one per output token after the first. Chunks carrying
 * several tokens (more tokens in usage than text chunks) have their gap split evenly over
 * the tokens they are assumed to carry; extra tokens are spread over chunks 2..k, earliest
 * first. A single chunk gives no gap (nothing was measured between tokens).
 */
export function itlGaps(chunkTimesMs: readonly number[], outputTokens: number): number[] {
  const k = chunkTimesMs.length;
  if (k < 2) return [];
  const extra = Math.max(0, outputTokens - k);
  const out: number[] = [];
  for (let i = 1; i < k; i++) {
    const share = Math.floor(extra / (k - 1)) + (i - 1 < extra % (k - 1) ? 1 : 0);
    const tokens = 1 + share;
    const gap = (chunkTimesMs[i]! - chunkTimesMs[i - 1]!) / tokens;
    for (let j = 0; j < tokens; j++) out.push(gap);
  }
  return out;
}
