import { Hono } from "hono";
import { DynamoError } from "../../errors/mod.ts";
import { type Decoder, IncrementalDetokenizer } from "../../llm/mod.ts";
import { Logger } from "../../observability/mod.ts";
import type { EngineOutput, EngineRequest } from "../../protocol/mod.ts";
import { type Clock, systemClock } from "../../util/mod.ts";
import type { Engine } from "../engine.ts";
import { EngineCall, sseResponse } from "../stand_in/mod.ts";
import {
  iterationJson,
  renderTrtllmPrometheus,
  type TrtllmCounters,
  type TrtllmIterationStats,
} from "./trtllm_metrics_text.ts";
import { type ParsedTrtllmCompletion, parseTrtllmCompletion } from "./trtllm_completion_request.ts";
import type { TrtllmServeArgs } from "./trtllm_serve_args.ts";

/** What the TensorRT-LLM stand-in's HTTP API serves. */
export interface TrtllmApiDeps {
  /** A started engine (the mocker). */
  readonly engine: Engine;
  readonly tokenizer: Decoder & { encode(text: string, addSpecialTokens: boolean): number[] };
  readonly eosTokenIds: readonly number[];
  readonly args: TrtllmServeArgs;
  /** What `/v1/models` calls the model (a folder's name, else the model argument). */
  readonly modelName: string;
  readonly maxSeqLen: number;
  readonly totalKvBlocks: number;
  readonly stats: TrtllmIterationStats;
  readonly clock?: Clock;
  readonly logger?: Logger;
}

/**
 * `trtllm-serve`'s OpenAI server, as far as a worker uses it, over a simulated engine:
 * `GET /health`, `GET /health_generate` (one generated token), `GET /version`,
 * `GET /v1/models`, `POST /v1/completions` (token-id or text prompts, streamed or not,
 * `detokenize: false` for token ids, usage with `prompt_tokens_details.cached_tokens`, a
 * strict request model), `GET /prometheus/metrics` (with `return_perf_metrics`; iteration
 * gauges once an iteration ran, with `enable_iter_perf_stats`), `GET /metrics` (iteration
 * stats JSON since the last read) and `POST /kv_cache_events` (always empty: the stand-in
 * publishes KV events only on ZMQ). A client that disconnects aborts its request.
 */
export function createTrtllmApiApp(deps: TrtllmApiDeps): Hono {
  const app = new Hono();
  const log = deps.logger ?? new Logger("trtllm_api");
  const clock = deps.clock ?? systemClock;
  const counters: TrtllmCounters = {
    promptTokens: 0,
    generationTokens: 0,
    cachedTokens: 0,
    success: {},
  };

  app.get("/health", (c) => c.body(null, 200));
  app.get("/version", (c) => c.json({ version: "dynamo-mocker" }));
  app.get("/v1/models", (c) =>
    c.json({
      object: "list",
      data: [{
        id: deps.modelName,
        object: "model",
        created: Math.floor(clock.nowMs() / 1000),
        owned_by: "tensorrt_llm",
      }],
    }));
  app.get("/health_generate", async (c) => {
    try {
      const call = new EngineCall(deps.engine, healthRequest(deps));
      const out = await call.all(new AbortController().signal);
      if (out.at(-1)?.finish_reason !== undefined) return c.text("Generation health check OK", 200);
    } catch (err) {
      log.error("Health generate check encountered exception", { err });
    }
    return c.text("Generation health check failed", 500);
  });
  app.get(
    "/metrics",
    (c) =>
      c.json(
        deps.args.enableIterPerfStats
          ? deps.stats.drain().map((it) => iterationJson(it, deps))
          : [],
      ),
  );
  app.post("/kv_cache_events", (c) => c.json([]));
  if (deps.args.returnPerfMetrics) {
    app.get("/prometheus/metrics", (c) =>
      c.body(renderTrtllmPrometheus(deps, counters), 200, {
        "content-type": "text/plain; version=0.0.4; charset=utf-8",
      }));
  }
  app.post("/v1/completions", async (c) => {
    let body: unknown;
    try {
      body = await c.req.json();
    } catch {
      return c.json({ error: "JSON decode error" }, 400);
    }
    const id = `cmpl-${crypto.randomUUID().replaceAll("-", "")}`;
    let parsed: ParsedTrtllmCompletion;
    try {
      parsed = parseTrtllmCompletion(body, {
        modelName: deps.modelName,
        maxSeqLen: deps.maxSeqLen,
        eosTokenIds: deps.eosTokenIds,
        encode: (text, add) => deps.tokenizer.encode(text, add),
        requestId: id,
      });
    } catch (err) {
      return errorResponse(err);
    }
    try {
      const call = new EngineCall(
        deps.engine,
        parsed.engineRequest,
        () => log.info(`127.0.0.1 is disconnected, abort ${id}`),
      );
      const render = new CompletionRendering(id, parsed, deps, counters, clock);
      if (parsed.stream) return sseResponse(call, render.sse());
      return Response.json(render.unary(await call.all(c.req.raw.signal)));
    } catch (err) {
      return errorResponse(err);
    }
  });
  app.notFound((c) => c.json({ detail: "Not Found" }, 404));
  return app;
}

function healthRequest(deps: TrtllmApiDeps): EngineRequest {
  return {
    request_id: `health-${crypto.randomUUID()}`,
    model: deps.modelName,
    token_ids: deps.tokenizer.encode("hi", true),
    stop_conditions: { max_tokens: 1, min_tokens: 0, ignore_eos: true, stop_token_ids: [] },
    sampling_options: { temperature: 0, top_p: null, top_k: null, seed: null },
    eos_token_ids: [...deps.eosTokenIds],
  };
}

/** Renders one completion as `trtllm-serve`'s post-processors do (`postprocess_handlers.py`). */
class CompletionRendering {
  readonly #id: string;
  readonly #parsed: ParsedTrtllmCompletion;
  readonly #deps: TrtllmApiDeps;
  readonly #counters: TrtllmCounters;
  readonly #created: number;
  readonly #detok: IncrementalDetokenizer;
  readonly #ids: number[] = [];
  #text = "";
  #cached = 0;

  constructor(
    id: string,
    parsed: ParsedTrtllmCompletion,
    deps: TrtllmApiDeps,
    counters: TrtllmCounters,
    clock: Clock,
  ) {
    this.#id = id;
    this.#parsed = parsed;
    this.#deps = deps;
    this.#counters = counters;
    this.#created = Math.floor(clock.nowMs() / 1000);
    this.#detok = new IncrementalDetokenizer(deps.tokenizer);
  }

  sse() {
    return {
      output: (out: EngineOutput): string[] => {
        const text = this.#take(out);
        if (out.token_ids.length === 0 && out.finish_reason === undefined) return [];
        return [JSON.stringify({
          id: this.#id,
          object: "text_completion",
          created: this.#created,
          model: this.#deps.modelName,
          choices: [this.#choice(text, out.token_ids, out)],
          usage: null,
        })];
      },
      finish: (): string[] =>
        this.#parsed.includeUsage
          ? [JSON.stringify({
            id: `chatcmpl-${crypto.randomUUID().replaceAll("-", "")}`,
            object: "chat.completion.chunk",
            created: this.#created,
            model: this.#deps.modelName,
            choices: [],
            usage: this.#usage(),
          })]
          : [],
      error: (err: unknown): string => JSON.stringify(errorBody(err)),
    };
  }

  unary(outputs: readonly EngineOutput[]): Record<string, unknown> {
    let last: EngineOutput | undefined;
    for (const out of outputs) {
      this.#take(out);
      last = out;
    }
    if (last?.finish_reason === undefined) {
      throw new DynamoError("engine_error", "engine_failed", "The engine stopped.");
    }
    return {
      id: this.#id,
      object: "text_completion",
      created: this.#created,
      model: this.#deps.modelName,
      choices: [{ ...this.#choice(this.#text, this.#ids, last), context_logits: null }],
      usage: this.#usage(),
      prompt_token_ids: null,
    };
  }

  #choice(text: string, ids: readonly number[], out: EngineOutput): Record<string, unknown> {
    const detok = this.#parsed.detokenize;
    return {
      index: 0,
      text: detok ? text : "",
      token_ids: detok ? null : [...ids],
      logprobs: null,
      finish_reason: finishReason(out),
      stop_reason: null,
      disaggregated_params: null,
      avg_decoded_tokens_per_iter: null,
    };
  }

  #take(out: EngineOutput): string {
    const cached = out.completion_usage?.prompt_tokens_details?.cached_tokens;
    if (cached !== undefined) this.#cached = cached;
    this.#ids.push(...out.token_ids);
    let text = this.#detok.push(out.token_ids);
    if (out.finish_reason !== undefined) {
      text += this.#detok.flush();
      const c = this.#counters;
      c.promptTokens += this.#parsed.engineRequest.token_ids.length;
      c.generationTokens += this.#ids.length;
      c.cachedTokens += this.#cached;
      const reason = finishReason(out) ?? "unknown";
      c.success[reason] = (c.success[reason] ?? 0) + 1;
    }
    this.#text += text;
    return text;
  }

  #usage(): Record<string, unknown> {
    const prompt = this.#parsed.engineRequest.token_ids.length;
    return {
      prompt_tokens: prompt,
      total_tokens: prompt + this.#ids.length,
      completion_tokens: this.#ids.length,
      prompt_tokens_details: { cached_tokens: this.#cached },
    };
  }
}

/** TensorRT-LLM's finish reasons: stop, length, cancelled (timeout is never simulated). */
function finishReason(out: EngineOutput): string | null {
  switch (out.finish_reason) {
    case undefined:
      return null;
    case "length":
      return "length";
    case "stop":
      return "stop";
    default:
      return "cancelled";
  }
}

/**
 * TensorRT-LLM's errors: pydantic validation errors are `{"error": "..."}` (its
 * RequestValidationError handler), the server's own are `ErrorResponse`
 * (`{"object": "error", message, type, param, code}`).
 */
function errorBody(err: unknown): Record<string, unknown> {
  const e = err instanceof DynamoError ? err : undefined;
  const message = err instanceof Error ? err.message : String(err);
  if (e?.reason === "validation_error") return { error: message };
  const status = e?.errorClass === "invalid_request" ? 400 : 500;
  return {
    object: "error",
    message,
    type: status === 400 ? "BadRequestError" : "InternalServerError",
    param: null,
    code: status,
  };
}

function errorResponse(err: unknown): Response {
  const status = err instanceof DynamoError && err.errorClass === "invalid_request" ? 400 : 500;
  return Response.json(errorBody(err), { status });
}
