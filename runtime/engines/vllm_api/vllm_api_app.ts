import { Hono } from "hono";
import { DynamoError } from "../../errors/mod.ts";
import { type Decoder, IncrementalDetokenizer } from "../../llm/mod.ts";
import { Logger } from "../../observability/mod.ts";
import type { CompletionUsage, EngineOutput } from "../../protocol/mod.ts";
import { type Clock, systemClock } from "../../util/mod.ts";
import type { Engine } from "../engine.ts";
import { parseCompletion, type ParsedCompletion } from "./completion_request.ts";
import {
  newVllmCounters,
  renderVllmMetrics,
  type VllmCacheConfig,
  type VllmCounters,
} from "./vllm_metrics_text.ts";

/** What the stand-in's HTTP API serves. */
export interface VllmApiDeps {
  /** A started engine (the mocker). */
  readonly engine: Engine;
  readonly tokenizer: Decoder & {
    encode(text: string, o?: { addSpecialTokens?: boolean }): number[];
  };
  readonly servedModelNames: readonly string[];
  /** The model argument, reported as `root` in `/v1/models`. */
  readonly modelRoot: string;
  readonly maxModelLen: number;
  readonly eosTokenIds: readonly number[];
  readonly enablePromptTokensDetails: boolean;
  readonly cache: VllmCacheConfig;
  readonly clock?: Clock;
  readonly logger?: Logger;
}

const encoder = new TextEncoder();

/**
 * vLLM's OpenAI-compatible server, as far as a worker uses it, over a simulated engine:
 * `GET /health`, `GET /v1/models` (with `max_model_len`), `GET /metrics` (vLLM's names),
 * and `POST /v1/completions` with token-id or text prompts, streamed or not, with
 * `return_token_ids`, `stream_options.include_usage` and
 * `usage.prompt_tokens_details.cached_tokens` (with `--enable-prompt-tokens-details`).
 * Errors have vLLM's shape, `{"error": {message, type, param, code}}`. A client that
 * disconnects aborts its request in the engine, as vLLM does. Built as a value; the CLI
 * binds it.
 */
export function createVllmApiApp(deps: VllmApiDeps): Hono {
  const app = new Hono();
  const log = deps.logger ?? new Logger("vllm_api");
  const counters = newVllmCounters();
  const clock = deps.clock ?? systemClock;

  app.get("/health", (c) => c.body(null, 200));
  app.get("/v1/models", (c) =>
    c.json({
      object: "list",
      data: deps.servedModelNames.map((id) => ({
        id,
        object: "model",
        created: Math.floor(clock.nowMs() / 1000),
        owned_by: "vllm",
        root: deps.modelRoot,
        parent: null,
        max_model_len: deps.maxModelLen,
        permission: [],
      })),
    }));
  app.get("/metrics", (c) =>
    c.body(
      renderVllmMetrics(deps.engine.load(), deps.cache, counters, deps.servedModelNames[0]!),
      200,
      { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
    ));
  app.post("/v1/completions", async (c) => {
    let body: unknown;
    try {
      body = await c.req.json();
    } catch {
      return errorResponse(
        new DynamoError("invalid_request", "bad_json", "The request body is not valid JSON."),
      );
    }
    const base = c.req.header("x-request-id") ?? requestIdOf(body) ??
      crypto.randomUUID().replaceAll("-", "");
    const id = `cmpl-${base}`;
    try {
      const parsed = parseCompletion(body, {
        servedModelNames: deps.servedModelNames,
        maxModelLen: deps.maxModelLen,
        eosTokenIds: deps.eosTokenIds,
        encode: (text, addSpecialTokens) => deps.tokenizer.encode(text, { addSpecialTokens }),
        requestId: `${id}-0`,
      });
      const run = new Completion(deps, parsed, { id, counters, log, clock });
      // A streamed answer learns of a disconnect from its body being cancelled; request.signal
      // (which Deno also aborts once a response succeeds) only serves the unary answer.
      return parsed.stream ? run.streamed() : await run.unary(c.req.raw.signal);
    } catch (err) {
      return errorResponse(err);
    }
  });
  app.notFound((c) => c.json({ detail: "Not Found" }, 404));
  return app;
}

function requestIdOf(body: unknown): string | undefined {
  const id = (body as Record<string, unknown> | null)?.["request_id"];
  return typeof id === "string" && id !== "" ? id : undefined;
}

/** One completion request in flight: the engine stream and its rendering. */
class Completion {
  readonly #deps: VllmApiDeps;
  readonly #parsed: ParsedCompletion;
  readonly #id: string;
  readonly #created: number;
  readonly #counters: VllmCounters;
  readonly #log: Logger;
  readonly #abort = new AbortController();
  readonly #detok: IncrementalDetokenizer;
  readonly #outputs: AsyncIterator<EngineOutput>;
  #completionTokens = 0;
  #usage: CompletionUsage | undefined;
  #lastToken: number | undefined;

  constructor(
    deps: VllmApiDeps,
    parsed: ParsedCompletion,
    o: { id: string; counters: VllmCounters; log: Logger; clock: Clock },
  ) {
    this.#deps = deps;
    this.#parsed = parsed;
    this.#id = o.id;
    this.#created = Math.floor(o.clock.nowMs() / 1000);
    this.#counters = o.counters;
    this.#log = o.log;
    this.#detok = new IncrementalDetokenizer(deps.tokenizer);
    // Started now, so a request the engine refuses is an HTTP error, not a broken stream.
    this.#outputs = deps.engine.generate(parsed.engineRequest, this.#abort.signal)[
      Symbol.asyncIterator
    ]();
  }

  get #model(): string {
    return this.#deps.servedModelNames[0]!;
  }

  /** Answers with one JSON body once the request has finished. */
  async unary(clientGone: AbortSignal): Promise<Response> {
    const onGone = (): void => this.#cancel();
    clientGone.addEventListener("abort", onGone, { once: true });
    try {
      const tokens: number[] = [];
      let text = "";
      let finish: string | undefined;
      for (;;) {
        const { done, value } = await this.#outputs.next();
        if (done) break;
        tokens.push(...value.token_ids);
        text += this.#take(value);
        if (value.finish_reason !== undefined) {
          text += this.#detok.flush();
          finish = this.#finishReason(value);
          break;
        }
      }
      if (finish === undefined || finish === "abort" || finish === "error") {
        throw new DynamoError("engine_error", "engine_failed", "The engine failed the request.");
      }
      this.#account(finish);
      const returnIds = this.#parsed.returnTokenIds;
      return Response.json({
        id: this.#id,
        object: "text_completion",
        created: this.#created,
        model: this.#model,
        choices: [{
          index: 0,
          text,
          logprobs: null,
          finish_reason: finish,
          stop_reason: this.#stopReason(finish),
          prompt_logprobs: null,
          prompt_token_ids: returnIds ? this.#parsed.engineRequest.token_ids : null,
          token_ids: returnIds ? tokens : null,
        }],
        usage: this.#usageJson(),
      });
    } finally {
      clientGone.removeEventListener("abort", onGone);
    }
  }

  /** Answers with server-sent events as tokens come; a disconnect aborts the request. */
  streamed(): Response {
    let first = true;
    let finished = false;
    const body = new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        if (finished) return;
        try {
          const { done, value } = await this.#outputs.next();
          if (done) throw new DynamoError("engine_error", "stream_ended", "The engine stopped.");
          const text = this.#take(value) +
            (value.finish_reason !== undefined ? this.#detok.flush() : "");
          const finish = value.finish_reason === undefined ? null : this.#finishReason(value);
          if (finish === "error") throw new DynamoError("engine_error", "engine_failed", "Error");
          if (value.token_ids.length > 0 || finish !== null) {
            controller.enqueue(this.#chunk(text, value.token_ids, finish, first));
            first = false;
          }
          if (finish === null) return;
          finished = true;
          this.#account(finish);
          if (this.#parsed.includeUsage) controller.enqueue(this.#usageChunk());
        } catch (err) {
          finished = true;
          controller.enqueue(sse(streamingError(err)));
        }
        if (finished) {
          controller.enqueue(sse("[DONE]"));
          controller.close();
        }
      },
      cancel: () => this.#cancel(),
    });
    return new Response(body, {
      headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" },
    });
  }

  #cancel(): void {
    if (this.#abort.signal.aborted) return;
    this.#abort.abort();
    this.#log.info(`Aborted request ${this.#parsed.engineRequest.request_id}.`);
    void this.#outputs.return?.(undefined);
  }

  #take(out: EngineOutput): string {
    if (out.completion_usage !== undefined) this.#usage = out.completion_usage;
    this.#completionTokens += out.token_ids.length;
    if (out.token_ids.length > 0) this.#lastToken = out.token_ids[out.token_ids.length - 1];
    return this.#detok.push(out.token_ids);
  }

  #finishReason(out: EngineOutput): string {
    switch (out.finish_reason) {
      case "cancelled":
        return "abort";
      case "error":
        return "error";
      case "length":
        return "length";
      default:
        return "stop";
    }
  }

  /** The stop token that ended the request, when it was one of `stop_token_ids` (not EOS). */
  #stopReason(finish: string): number | null {
    const stops = this.#parsed.engineRequest.stop_conditions.stop_token_ids;
    const last = this.#lastToken;
    return finish === "stop" && last !== undefined && stops.includes(last) ? last : null;
  }

  #chunk(text: string, tokenIds: readonly number[], finish: string | null, first: boolean) {
    const returnIds = this.#parsed.returnTokenIds;
    const chunk: Record<string, unknown> = {
      id: this.#id,
      object: "text_completion",
      created: this.#created,
      model: this.#model,
      choices: [{
        index: 0,
        text,
        logprobs: null,
        finish_reason: finish,
        stop_reason: finish === null ? null : this.#stopReason(finish),
        prompt_token_ids: returnIds && first ? this.#parsed.engineRequest.token_ids : null,
        token_ids: returnIds ? tokenIds : null,
      }],
    };
    if (this.#parsed.continuousUsage) {
      const prompt = this.#parsed.engineRequest.token_ids.length;
      chunk["usage"] = {
        prompt_tokens: prompt,
        completion_tokens: this.#completionTokens,
        total_tokens: prompt + this.#completionTokens,
      };
    }
    return sse(JSON.stringify(chunk));
  }

  #usageChunk(): Uint8Array {
    return sse(JSON.stringify({
      id: this.#id,
      object: "text_completion",
      created: this.#created,
      model: this.#model,
      choices: [],
      usage: this.#usageJson(),
    }));
  }

  #usageJson(): Record<string, unknown> {
    const prompt = this.#parsed.engineRequest.token_ids.length;
    const usage: Record<string, unknown> = {
      prompt_tokens: prompt,
      total_tokens: prompt + this.#completionTokens,
      completion_tokens: this.#completionTokens,
    };
    if (this.#deps.enablePromptTokensDetails) {
      usage["prompt_tokens_details"] = {
        cached_tokens: this.#usage?.prompt_tokens_details?.cached_tokens ?? 0,
      };
    }
    return usage;
  }

  #account(finish: string): void {
    const c = this.#counters;
    const prompt = this.#parsed.engineRequest.token_ids.length;
    c.promptTokens += prompt;
    c.generationTokens += this.#completionTokens;
    c.prefixCacheQueries += prompt;
    c.prefixCacheHits += this.#usage?.prompt_tokens_details?.cached_tokens ?? 0;
    c.requestSuccess[finish] = (c.requestSuccess[finish] ?? 0) + 1;
  }
}

function sse(data: string): Uint8Array {
  return encoder.encode(`data: ${data}\n\n`);
}

/** vLLM's error body: `{"error": {message, type, param, code}}` with its HTTP status. */
export function errorResponse(err: unknown): Response {
  const e = err instanceof DynamoError
    ? err
    : new DynamoError("internal", "unexpected", err instanceof Error ? err.message : String(err));
  return Response.json(errorBody(e, statusOf(e)), { status: statusOf(e) });
}

function errorBody(e: DynamoError, status: number): Record<string, unknown> {
  const type = status === 404
    ? "NotFoundError"
    : status < 500
    ? "BadRequestError"
    : "InternalServerError";
  return { error: { message: e.message, type, param: e.param ?? null, code: status } };
}

function streamingError(err: unknown): string {
  const e = err instanceof DynamoError
    ? err
    : new DynamoError("internal", "unexpected", err instanceof Error ? err.message : String(err));
  return JSON.stringify(errorBody(e, statusOf(e)));
}

/** The status vLLM answers with: 400 bad input, 404 unknown model, 503 busy, else 500. */
function statusOf(e: DynamoError): number {
  switch (e.errorClass) {
    case "invalid_request":
      return 400;
    case "not_found":
      return 404;
    case "overloaded":
    case "unavailable":
      return 503;
    default:
      return 500;
  }
}
