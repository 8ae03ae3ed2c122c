import { Hono } from "hono";
import { DynamoError } from "../../errors/mod.ts";
import { type Decoder, IncrementalDetokenizer } from "../../llm/mod.ts";
import { Logger } from "../../observability/mod.ts";
import type { EngineOutput } from "../../protocol/mod.ts";
import { type Clock, systemClock } from "../../util/mod.ts";
import type { Engine } from "../engine.ts";
import { EngineCall, sseResponse } from "../stand_in/mod.ts";
import {
  buildGenerate,
  type GenerateContext,
  type ParsedGenerate,
  parseGenerateShape,
} from "./sglang_generate_request.ts";
import { renderSglangMetrics, type SglangCounters } from "./sglang_metrics_text.ts";
import type { SglangServerArgs } from "./sglang_server_args.ts";

/** What the SGLang stand-in's HTTP API serves. */
export interface SglangApiDeps {
  /** A started engine (the mocker). */
  readonly engine: Engine;
  readonly tokenizer: Decoder & { encode(text: string): number[] };
  readonly eosTokenIds: readonly number[];
  readonly args: SglangServerArgs;
  readonly contextLength: number;
  /** The KV pool in tokens (SGLang's `max_total_num_tokens`). */
  readonly maxTotalNumTokens: number;
  readonly maxRunningRequests: number;
  readonly chunkedPrefillSize: number;
  readonly clock?: Clock;
  readonly logger?: Logger;
}

/**
 * SGLang's HTTP server, as far as a worker uses it, over a simulated engine:
 * `GET /health` and `/health_generate`, `GET /v1/models` (with `max_model_len`),
 * `GET /server_info` and `/get_server_info` (server args plus `max_total_num_tokens`),
 * `GET /get_model_info`, `GET /metrics` with SGLang's names (only with `--enable-metrics`,
 * as in SGLang), and the native `POST /generate` with `input_ids` or `text`, streamed or not,
 * returning `output_ids` (cumulative, or new ones only with `--incremental-streaming-output`)
 * and `meta_info` with `cached_tokens`. A request SGLang refuses is a 400
 * `{"error": {"message"}}`, or, when streamed, an error chunk inside the 200 stream, as
 * SGLang does. A client that disconnects aborts its request. Built as a value; the CLI binds it.
 */
export function createSglangApiApp(deps: SglangApiDeps): Hono {
  const app = new Hono();
  const log = deps.logger ?? new Logger("sglang_api");
  const clock = deps.clock ?? systemClock;
  const counters: SglangCounters = {
    promptTokens: 0,
    generationTokens: 0,
    cachedTokens: 0,
    requests: 0,
  };
  const served = deps.args.servedModelName;
  const ctx: GenerateContext = {
    servedModelName: served,
    contextLength: deps.contextLength,
    eosTokenIds: deps.eosTokenIds,
    encode: (text) => deps.tokenizer.encode(text),
    newRid: () => crypto.randomUUID().replaceAll("-", ""),
  };

  app.get("/health", (c) => c.body(null, 200));
  app.get("/health_generate", (c) => c.body(null, 200));
  app.get("/v1/models", (c) =>
    c.json({
      object: "list",
      data: [{
        id: served,
        object: "model",
        created: Math.floor(clock.nowMs() / 1000),
        owned_by: "sglang",
        root: served,
        max_model_len: deps.contextLength,
      }],
    }));
  const info = () => serverInfo(deps);
  app.get("/server_info", (c) => c.json(info()));
  app.get("/get_server_info", (c) => c.json(info()));
  app.get("/get_model_info", (c) =>
    c.json({
      model_path: deps.args.modelPath,
      tokenizer_path: deps.args.tokenizerPath ?? deps.args.modelPath,
      is_generation: true,
      preferred_sampling_params: null,
      weight_version: "default",
    }));
  if (deps.args.enableMetrics) {
    app.get("/metrics", (c) =>
      c.body(renderSglangMetrics(deps, counters), 200, {
        "content-type": "text/plain; version=0.0.4; charset=utf-8",
      }));
  }
  app.post("/generate", async (c) => {
    let parsed: ParsedGenerate;
    let shape;
    try {
      shape = parseGenerateShape(await c.req.json().catch(() => null));
    } catch (err) {
      return validationError(err);
    }
    try {
      parsed = buildGenerate(shape, ctx);
    } catch (err) {
      // SGLang raises these as ValueError: a 400 for a unary request, an error chunk in the
      // already started stream for a streamed one.
      if (shape.stream === true) return streamedError(err);
      return errorResponse(err);
    }
    const render = new GenerateRendering(parsed, deps, counters);
    try {
      const call = new EngineCall(
        deps.engine,
        parsed.engineRequest,
        () => log.info(`Abort request rid=${parsed.rid}`),
      );
      if (parsed.stream) return sseResponse(call, render.sse());
      return Response.json(render.unary(await call.all(c.req.raw.signal)));
    } catch (err) {
      return errorResponse(err);
    }
  });
  app.notFound((c) => c.json({ detail: "Not Found" }, 404));
  return app;
}

/** `/server_info`: the server args as SGLang's dataclass dump names them, plus the scheduler's. */
function serverInfo(deps: SglangApiDeps): Record<string, unknown> {
  const a = deps.args;
  return {
    model_path: a.modelPath,
    tokenizer_path: a.tokenizerPath ?? a.modelPath,
    host: a.host,
    port: a.port,
    served_model_name: a.servedModelName,
    page_size: a.pageSize,
    context_length: a.contextLength ?? null,
    max_running_requests: deps.maxRunningRequests,
    max_total_tokens: a.maxTotalTokens ?? null,
    chunked_prefill_size: deps.chunkedPrefillSize,
    max_prefill_tokens: a.maxPrefillTokens,
    disable_radix_cache: a.disableRadixCache,
    enable_metrics: a.enableMetrics,
    kv_events_config: a.kvEventsConfig === undefined ? null : JSON.stringify(a.kvEventsConfig),
    random_seed: a.randomSeed ?? null,
    incremental_streaming_output: a.incrementalStreamingOutput,
    max_total_num_tokens: deps.maxTotalNumTokens,
    max_req_input_len: deps.contextLength - 1,
    internal_states: [{ max_running_requests: deps.maxRunningRequests }],
    version: "dynamo-mocker",
  };
}

/** Renders one `/generate` request's outputs as SGLang does. */
class GenerateRendering {
  readonly #parsed: ParsedGenerate;
  readonly #deps: SglangApiDeps;
  readonly #counters: SglangCounters;
  readonly #detok: IncrementalDetokenizer;
  readonly #ids: number[] = [];
  #text = "";
  #cached = 0;

  constructor(parsed: ParsedGenerate, deps: SglangApiDeps, counters: SglangCounters) {
    this.#parsed = parsed;
    this.#deps = deps;
    this.#counters = counters;
    this.#detok = new IncrementalDetokenizer(deps.tokenizer);
  }

  sse() {
    const incremental = this.#deps.args.incrementalStreamingOutput;
    return {
      output: (out: EngineOutput): string[] => {
        const delta = this.#take(out);
        if (out.token_ids.length === 0 && out.finish_reason === undefined) return [];
        return [JSON.stringify({
          text: incremental ? delta : this.#text,
          output_ids: incremental ? [...out.token_ids] : [...this.#ids],
          meta_info: this.#meta(out),
        })];
      },
      finish: (): string[] => [],
      error: (err: unknown): string => JSON.stringify({ error: { message: messageOf(err) } }),
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
    return { text: this.#text, output_ids: [...this.#ids], meta_info: this.#meta(last) };
  }

  #take(out: EngineOutput): string {
    const cached = out.completion_usage?.prompt_tokens_details?.cached_tokens;
    if (cached !== undefined) this.#cached = cached;
    this.#ids.push(...out.token_ids);
    let delta = this.#detok.push(out.token_ids);
    if (out.finish_reason !== undefined) {
      delta += this.#detok.flush();
      this.#account();
    }
    this.#text += delta;
    return delta;
  }

  #account(): void {
    const c = this.#counters;
    c.promptTokens += this.#parsed.engineRequest.token_ids.length;
    c.generationTokens += this.#ids.length;
    c.cachedTokens += this.#cached;
    c.requests++;
  }

  #meta(out: EngineOutput): Record<string, unknown> {
    return {
      id: this.#parsed.rid,
      finish_reason: this.#finishReason(out),
      prompt_tokens: this.#parsed.engineRequest.token_ids.length,
      weight_version: "default",
      completion_tokens: this.#ids.length,
      cached_tokens: this.#cached,
    };
  }

  /** `BaseFinishReason.to_json` (`sglang/srt/managers/schedule_batch.py`). */
  #finishReason(out: EngineOutput): Record<string, unknown> | null {
    switch (out.finish_reason) {
      case undefined:
        return null;
      case "length":
        return { type: "length", length: this.#parsed.maxNewTokens };
      case "stop":
        return { type: "stop", matched: this.#ids.at(-1) ?? null };
      case "cancelled":
        return { type: "abort", message: "Abort in waiting queue" };
      default:
        return { type: "abort", message: "The engine failed the request.", status_code: 500 };
    }
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** SGLang's `_create_error_response`: `{"error": {"message"}}`, 400 for bad input. */
function errorResponse(err: unknown): Response {
  const status = err instanceof DynamoError && err.errorClass === "invalid_request" ? 400 : 500;
  return Response.json({ error: { message: messageOf(err) } }, { status });
}

/** FastAPI's request validation error, which SGLang turns into a 400 `ErrorResponse`. */
function validationError(err: unknown): Response {
  return Response.json(
    { object: "error", message: messageOf(err), type: "Bad Request", param: null, code: 400 },
    { status: 400 },
  );
}

/** A 200 stream whose only chunk is the error, then `[DONE]` (`generate_request`). */
function streamedError(err: unknown): Response {
  const body = `data: ${
    JSON.stringify({ error: { message: messageOf(err) } })
  }\n\ndata: [DONE]\n\n`;
  return new Response(body, { headers: { "content-type": "text/event-stream; charset=utf-8" } });
}
