import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { Context } from "hono";
import { asDynamoError, DynamoError, httpStatusOf, toOpenAIErrorBody } from "../errors/mod.ts";
import { Logger } from "../observability/mod.ts";
import type { Clock } from "../util/mod.ts";
import type { EndpointName, FrontendMetrics } from "./metrics.ts";
import type { ModelRegistry, ServedModel } from "./model_registry.ts";
import { ChatCompletionRequestSchema, CompletionRequestSchema } from "./openai_schemas.ts";
import { openApiDocument } from "./openapi.ts";
import type { Pipeline } from "./pipeline.ts";
import { preprocessChat, preprocessCompletion, type Preprocessed } from "./preprocess.ts";
import type { ResponseIds } from "./responses.ts";
import { runCompletion } from "./request_handler.ts";
import { parseBody, readJsonBody } from "./validation.ts";

const log = new Logger("frontend.http");

export interface FrontendDeps {
  readonly registry: ModelRegistry;
  readonly pipeline: Pipeline;
  readonly metrics: FrontendMetrics;
  readonly clock: Clock;
  readonly namespace: string;
  /** Largest accepted request body. */
  readonly maxBodyBytes: number;
  /** Deadline for one request, end to end. */
  readonly requestTimeoutMs: number;
  /** True once shutdown has begun: /live answers 503 so load balancers drain us. */
  readonly isShuttingDown: () => boolean;
}

/**
 * The OpenAI-compatible HTTP API as a value: routes are registered here and the app is
 * returned, so tests drive it with `app.request()` and only `cli/` binds a socket.
 */
export function createFrontendApp(deps: FrontendDeps): Hono {
  const app = new Hono();
  app.onError((err, c) => errorResponse(c, asDynamoError(err)));
  app.notFound((c) =>
    errorResponse(
      c,
      new DynamoError("not_found", "no_route", `No route for ${c.req.method} ${c.req.path}`),
    )
  );
  const limit = bodyLimit({
    maxSize: deps.maxBodyBytes,
    onError: (c) =>
      errorResponse(
        c,
        new DynamoError(
          "invalid_request",
          "body_too_large",
          `Request body is larger than the limit of ${deps.maxBodyBytes} bytes`,
          { httpStatus: 413 },
        ),
      ),
  });

  app.get(
    "/v1/models",
    (c) => c.json({ object: "list", data: deps.registry.models().map(modelObject) }),
  );
  app.get("/v1/models/:id{.+}", (c) => {
    const model = deps.registry.get(c.req.param("id"));
    if (model === undefined) throw unknownModel(deps.registry, c.req.param("id"));
    return c.json(modelObject(model));
  });

  app.post(
    "/v1/chat/completions",
    limit,
    completionRoute(deps, {
      endpoint: "chat_completions",
      idPrefix: "chatcmpl",
      parse: (body) => parseBody(ChatCompletionRequestSchema, body),
      preprocess: preprocessChat,
    }),
  );
  app.post(
    "/v1/completions",
    limit,
    completionRoute(deps, {
      endpoint: "completions",
      idPrefix: "cmpl",
      parse: (body) => parseBody(CompletionRequestSchema, body),
      preprocess: preprocessCompletion,
    }),
  );

  app.get("/health", (c) => {
    const instances = deps.registry.endpoints().map((e) => ({
      component: e.component,
      endpoint: e.endpoint,
      instance_id: e.instance_id,
      namespace: e.namespace,
      transport: e.transport,
    }));
    const endpoints = [
      ...new Set(instances.map((i) => `dyn://${i.namespace}.${i.component}.${i.endpoint}`)),
    ].sort();
    return c.json({ status: "healthy", endpoints, instances });
  });
  app.get(
    "/live",
    (c) =>
      deps.isShuttingDown() ? c.json({ status: "shutting_down" }, 503) : c.json({ status: "live" }),
  );
  app.get("/metrics", async (c) => {
    const text = await deps.metrics.registry.metrics();
    return c.body(text, 200, { "content-type": deps.metrics.registry.contentType });
  });
  app.get("/openapi.json", (c) => c.json(openApiDocument()));
  return app;
}

interface CompletionRouteSpec<T extends { model: string; stream?: boolean | null }> {
  readonly endpoint: EndpointName;
  readonly idPrefix: string;
  readonly parse: (body: unknown) => T;
  readonly preprocess: (
    body: T,
    model: ServedModel,
    options: { requestId: string; pinnedInstanceId?: number },
  ) => Preprocessed;
}

/**
 * One handler for both completion endpoints: parse and validate, find the model,
 * preprocess, then run. Requests refused before they run are counted here; the rest are
 * counted by `runCompletion` when they end.
 */
function completionRoute<T extends { model: string; stream?: boolean | null }>(
  deps: FrontendDeps,
  spec: CompletionRouteSpec<T>,
): (c: Context) => Promise<Response> {
  return async (c) => {
    const labels = { model: "", endpoint: spec.endpoint, stream: false };
    let prepared: { model: ServedModel; pre: Preprocessed; ids: ResponseIds };
    try {
      const raw = await readJsonBody(c.req.raw);
      // Label a refused request with the model it named, if that model is one we know:
      // arbitrary client strings as label values would grow the metrics without bound.
      const named = (raw as { model?: unknown } | null)?.model;
      if (typeof named === "string" && deps.registry.isKnown(named)) labels.model = named;
      const body = spec.parse(raw);
      labels.stream = body.stream ?? false;
      const model = await lookupModel(deps, body.model, c.req.raw.signal);
      const requestId = crypto.randomUUID();
      const pre = spec.preprocess(body, model, { requestId, pinnedInstanceId: pinnedWorker(c) });
      const ids = {
        id: `${spec.idPrefix}-${requestId}`,
        created: nowS(deps),
        model: body.model,
        endpoint: spec.endpoint,
      };
      prepared = { model, pre, ids };
    } catch (err) {
      deps.metrics.countRequest(labels, asDynamoError(err).errorClass);
      throw err;
    }
    return await runCompletion(deps, prepared.model, prepared.pre, prepared.ids, c.req.raw.signal);
  };
}

function nowS(deps: FrontendDeps): number {
  return Math.floor(deps.clock.nowMs() / 1000);
}

function modelObject(m: ServedModel): Record<string, unknown> {
  return { id: m.name, object: "model", created: 0, owned_by: "dynamo" };
}

/**
 * How long a request for a model whose first worker has just registered waits for the
 * model's tokenizer to load (it is then served, not refused with 503).
 */
const MODEL_LOAD_WAIT_MS = 10_000;

async function lookupModel(
  deps: FrontendDeps,
  name: string,
  signal: AbortSignal,
): Promise<ServedModel> {
  const wait = Math.min(MODEL_LOAD_WAIT_MS, deps.requestTimeoutMs);
  const model = await deps.registry.waitFor(name, wait, signal);
  if (model === undefined) throw unknownModel(deps.registry, name);
  return model;
}

function unknownModel(registry: ModelRegistry, name: string): DynamoError {
  if (registry.isKnown(name)) {
    return new DynamoError(
      "unavailable",
      "no_workers",
      `Model "${name}" has no live worker right now; retry shortly`,
      { param: "model", retryAfterS: 1 },
    );
  }
  return new DynamoError("not_found", "model_not_found", `The model "${name}" does not exist`, {
    param: "model",
  });
}

/** A worker pinned by header (`x-worker-instance-id`, decimal); it overrides nvext. */
function pinnedWorker(c: Context): number | undefined {
  const header = c.req.header("x-worker-instance-id");
  if (header === undefined) return undefined;
  const id = Number(header);
  if (!Number.isSafeInteger(id) || id <= 0) {
    throw new DynamoError(
      "invalid_request",
      "invalid_header",
      `Invalid x-worker-instance-id header: "${header}" (expected a decimal instance id)`,
      { param: "x-worker-instance-id" },
    );
  }
  return id;
}

function errorResponse(c: Context, err: DynamoError): Response {
  const status = httpStatusOf(err);
  if (err.errorClass === "internal") {
    log.error("Request failed", { path: c.req.path, error: err, cause: String(err.cause ?? "") });
  }
  const headers: Record<string, string> = {};
  if (err.retryAfterS !== undefined) headers["retry-after"] = String(Math.ceil(err.retryAfterS));
  return c.json(toOpenAIErrorBody(err), status as 400, headers);
}
