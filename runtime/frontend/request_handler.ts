import { asDynamoError, type DynamoError, toOpenAIErrorBody } from "../errors/mod.ts";
import { Logger } from "../observability/mod.ts";
import type { Clock } from "../util/mod.ts";
import type { EndpointName, FrontendMetrics } from "./metrics.ts";
import type { ServedModel } from "./model_registry.ts";
import { type OutputEvent, processOutputs } from "./output_processor.ts";
import type { DispatchInfo, Pipeline } from "./pipeline.ts";
import type { Preprocessed } from "./preprocess.ts";
import {
  chunk,
  fullResponse,
  type ResponseIds,
  usageChunk,
  workerIdExtension,
} from "./responses.ts";

const log = new Logger("frontend.http");
const encoder = new TextEncoder();

export interface HandlerDeps {
  readonly pipeline: Pipeline;
  readonly metrics: FrontendMetrics;
  readonly clock: Clock;
  /** Deadline for a whole request; it fails with `timeout` when passed. */
  readonly requestTimeoutMs: number;
}

/** Per-request timing that feeds the latency histograms. */
class RequestTimer {
  readonly #deps: HandlerDeps;
  readonly #model: string;
  readonly #startMs: number;
  #lastTokenMs: number | undefined;
  #outputTokens = 0;

  constructor(deps: HandlerDeps, model: string) {
    this.#deps = deps;
    this.#model = model;
    this.#startMs = deps.clock.nowMs();
  }

  tokens(count: number): void {
    if (count === 0) return;
    const now = this.#deps.clock.nowMs();
    const labels = { model: this.#model };
    if (this.#lastTokenMs === undefined) {
      this.#deps.metrics.ttftSeconds.observe(labels, (now - this.#startMs) / 1000);
      for (let i = 1; i < count; i++) this.#deps.metrics.itlSeconds.observe(labels, 0);
    } else {
      const perToken = (now - this.#lastTokenMs) / 1000 / count;
      for (let i = 0; i < count; i++) this.#deps.metrics.itlSeconds.observe(labels, perToken);
    }
    this.#lastTokenMs = now;
    this.#outputTokens += count;
    this.#deps.metrics.outputTokensTotal.inc(labels, count);
  }

  finish(promptTokens: number, cachedTokens: number): void {
    const labels = { model: this.#model };
    const m = this.#deps.metrics;
    m.durationSeconds.observe(labels, (this.#deps.clock.nowMs() - this.#startMs) / 1000);
    m.inputTokens.observe(labels, promptTokens);
    m.outputTokens.observe(labels, this.#outputTokens);
    m.cachedTokens.observe(labels, cachedTokens);
  }
}

/**
 * Runs one preprocessed request through the pipeline and renders the OpenAI response,
 * streaming (SSE) or not. Cancellation: the client's disconnect (the request's signal)
 * and the request deadline both abort the pipeline, which cancels the worker's stream.
 */
export async function runCompletion(
  deps: HandlerDeps,
  model: ServedModel,
  pre: Preprocessed,
  ids: ResponseIds,
  clientSignal: AbortSignal,
): Promise<Response> {
  const controller = new AbortController();
  const signal = AbortSignal.any([
    clientSignal,
    controller.signal,
    AbortSignal.timeout(deps.requestTimeoutMs),
  ]);
  const labels = { model: model.name, endpoint: ids.endpoint, stream: pre.stream };
  deps.metrics.inflight.inc({ model: model.name });
  const timer = new RequestTimer(deps, model.name);
  const info: DispatchInfo = { instanceId: undefined };
  const events = processOutputs(
    deps.pipeline.generate(model, pre.engineRequest, signal, info),
    {
      tokenizer: model.tokenizer,
      stops: pre.stops,
      promptTokens: pre.engineRequest.token_ids.length,
    },
  );
  let settled = false;
  const settle = (error: DynamoError | undefined, cached: number, disconnected = false): void => {
    if (settled) return;
    settled = true;
    deps.metrics.inflight.dec({ model: model.name });
    if (disconnected || (error?.errorClass === "cancelled" && clientSignal.aborted)) {
      deps.metrics.disconnectedClients.inc();
    }
    deps.metrics.countRequest(labels, error?.errorClass);
    timer.finish(pre.engineRequest.token_ids.length, cached);
  };
  if (!pre.stream) {
    try {
      let text = "";
      for await (const ev of events) {
        if (ev.kind === "text") {
          text += ev.text;
          timer.tokens(ev.tokens);
          continue;
        }
        settle(undefined, ev.usage.prompt_tokens_details.cached_tokens);
        const nvext = pre.wantWorkerId ? workerIdExtension(info.instanceId) : undefined;
        return Response.json(fullResponse(ids, text, ev.finishReason, ev.usage, nvext));
      }
      throw new Error("Output ended without an end event");
    } catch (err) {
      const error = classify(err, signal);
      settle(error, 0);
      throw error;
    }
  }
  return sseResponse(deps, { events, ids, pre, timer, info, settle, controller, signal });
}

interface SseState {
  readonly events: AsyncGenerator<OutputEvent>;
  readonly ids: ResponseIds;
  readonly pre: Preprocessed;
  readonly timer: RequestTimer;
  readonly info: DispatchInfo;
  readonly settle: (error: DynamoError | undefined, cached: number, disconnected?: boolean) => void;
  readonly controller: AbortController;
  readonly signal: AbortSignal;
}

function sseResponse(_deps: HandlerDeps, s: SseState): Response {
  const extra = { includeUsage: s.pre.includeUsage };
  const frame = (obj: unknown): Uint8Array => encoder.encode(`data: ${JSON.stringify(obj)}\n\n`);
  const done = encoder.encode("data: [DONE]\n\n");
  let first = true;
  // Pull-based: the next event is produced only when the client has read the last one, so
  // a slow client slows the worker's stream (request-plane credit) instead of filling memory.
  const body = new ReadableStream<Uint8Array>({
    async pull(sink) {
      try {
        for (;;) {
          const next = await s.events.next();
          if (next.done) throw new Error("Output ended without an end event");
          const ev = next.value;
          if (ev.kind === "text") {
            s.timer.tokens(ev.tokens);
            if (ev.text === "" && !first) continue;
            const role = first && isChat(s.ids) ? "assistant" : undefined;
            sink.enqueue(frame(chunk(s.ids, { role, text: ev.text }, null, extra)));
            first = false;
            return;
          }
          const nvext = s.pre.wantWorkerId ? workerIdExtension(s.info.instanceId) : undefined;
          const delta = isChat(s.ids) ? {} : { text: "" };
          sink.enqueue(frame(chunk(s.ids, delta, ev.finishReason, { ...extra, nvext })));
          if (s.pre.includeUsage) sink.enqueue(frame(usageChunk(s.ids, ev.usage)));
          sink.enqueue(done);
          s.settle(undefined, ev.usage.prompt_tokens_details.cached_tokens);
          sink.close();
          return;
        }
      } catch (err) {
        const error = classify(err, s.signal);
        s.settle(error, 0);
        if (error.errorClass === "cancelled" && s.signal.aborted) {
          sink.close();
          return;
        }
        log.warn("Streaming request failed", {
          request_id: s.pre.engineRequest.request_id,
          error,
        });
        sink.enqueue(frame(toOpenAIErrorBody(error)));
        sink.enqueue(done);
        sink.close();
      }
    },
    async cancel() {
      s.controller.abort();
      s.settle(asDynamoError(new DOMException("Client disconnected", "AbortError")), 0, true);
      await s.events.return(undefined).catch(() => {});
    },
  }, { highWaterMark: 0 });
  return new Response(body, {
    headers: {
      "content-type": "text/event-stream",
      "cache-control": "no-cache",
      "x-accel-buffering": "no",
    },
  });
}

function isChat(ids: ResponseIds): boolean {
  return ids.endpoint === "chat_completions";
}

/**
 * What ended a request: once our own signal has aborted, its reason decides (the client
 * went away: cancelled; the deadline passed: timeout), whatever the pipeline threw.
 */
function classify(err: unknown, signal: AbortSignal): DynamoError {
  return asDynamoError(signal.aborted ? signal.reason : err);
}

export type { EndpointName };
