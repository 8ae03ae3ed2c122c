import type { Hono } from "hono";
import { z } from "zod";
import { DynamoError } from "../errors/mod.ts";
import type { KvExplanation, KvSelector, RouteDecision } from "../router/mod.ts";
import type { ModelRegistry, ServedModel } from "./model_registry.ts";
import { parseBody, readJsonBody } from "./validation.ts";

const RouteBodySchema = z.object({
  model: z.string().min(1),
  messages: z.array(z.object({ role: z.string(), content: z.string() })).min(1).optional(),
  prompt: z.string().optional(),
  token_ids: z.array(z.number().int().nonnegative()).optional(),
  /** Standalone router only: book the load under this id (release it with /v1/route/free). */
  request_id: z.string().min(1).max(200).optional(),
  book: z.boolean().optional(),
  /** Only these workers may be chosen (e.g. a gateway's healthy endpoints). */
  allowed_worker_ids: z.array(z.number().int().positive()).max(4096).optional(),
  nvext: z.object({
    router_config_override: z.object({
      overlap_score_weight: z.number().min(0).optional(),
      router_temperature: z.number().min(0).optional(),
    }).optional(),
  }).optional(),
});
export type RouteBody = z.infer<typeof RouteBodySchema>;

const ReleaseSchema = z.object({ request_id: z.string().min(1).max(200) });

/** The answer of `POST /v1/route`. */
export interface RouteAnswer extends KvExplanation {
  readonly model: string;
  readonly worker_id: number;
  readonly request_id: string;
  readonly booked: boolean;
}

/** Tokens of a route request: token_ids as given, a prompt tokenized, or messages templated. */
function routeTokens(body: RouteBody, model: ServedModel): number[] {
  const given = [body.token_ids, body.prompt, body.messages].filter((x) => x !== undefined).length;
  if (given !== 1) {
    throw new DynamoError(
      "invalid_request",
      "invalid_field",
      "Give exactly one of messages, prompt or token_ids",
      { param: "messages" },
    );
  }
  if (body.token_ids !== undefined) return body.token_ids;
  if (body.prompt !== undefined) return model.tokenizer.encode(body.prompt);
  const text = model.tokenizer.renderChat(body.messages!.map((m) => ({ ...m })));
  return model.tokenizer.encode(text, { addSpecialTokens: false });
}

/**
 * Registers the routing API: `POST /v1/route` answers which worker a request would go to
 * and why (per candidate: overlap blocks, prefill tokens, decode blocks, logit) without
 * sending it anywhere. With `allowBooking` (the standalone router), `book: true` also
 * books the request's load, to be released with `/v1/route/mark_prefill_complete` and
 * `/v1/route/free` (bookings expire after 5 minutes regardless).
 */
export function registerRouteApi(
  app: Hono,
  deps: { registry: ModelRegistry; nowMs: () => number; allowBooking: boolean },
): void {
  app.post("/v1/route", async (c) => {
    const body = parseBody(RouteBodySchema, await readJsonBody(c.req.raw));
    const model = deps.registry.get(body.model);
    if (model === undefined) {
      throw deps.registry.isKnown(body.model)
        ? new DynamoError("unavailable", "no_workers", `Model "${body.model}" has no live worker`, {
          param: "model",
          retryAfterS: 1,
        })
        : new DynamoError(
          "not_found",
          "model_not_found",
          `The model "${body.model}" does not exist`,
          {
            param: "model",
          },
        );
    }
    const selector = kvSelectorOf(model);
    const book = body.book === true;
    if (book && !deps.allowBooking) {
      throw new DynamoError(
        "invalid_request",
        "booking_not_supported",
        "book is only supported by a standalone router (dynamo router)",
        { param: "book" },
      );
    }
    const allowed = body.allowed_worker_ids === undefined
      ? undefined
      : new Set(body.allowed_worker_ids);
    const candidates = model.routableWorkers(deps.nowMs()).filter((w) =>
      allowed?.has(w.instanceId) ?? true
    );
    if (candidates.length === 0) {
      throw new DynamoError("unavailable", "no_workers", `No eligible worker for "${body.model}"`, {
        retryAfterS: 1,
      });
    }
    const o = body.nvext?.router_config_override;
    const request = {
      requestId: body.request_id ?? crypto.randomUUID(),
      tokenIds: routeTokens(body, model),
      overrides: {
        ...(o?.overlap_score_weight === undefined
          ? {}
          : { overlapScoreWeight: o.overlap_score_weight }),
        ...(o?.router_temperature === undefined ? {} : { temperature: o.router_temperature }),
      },
    };
    let decision: { instanceId: number; explanation: KvExplanation };
    if (book) {
      const d: RouteDecision = await selector.select(request, candidates, c.req.raw.signal);
      selector.onRouted(request, d.instanceId);
      decision = { instanceId: d.instanceId, explanation: d.explanation as KvExplanation };
    } else {
      decision = selector.explain(request, candidates);
    }
    const answer: RouteAnswer = {
      model: body.model,
      worker_id: decision.instanceId,
      request_id: request.requestId,
      booked: book,
      ...decision.explanation,
    };
    return c.json(answer);
  });
  if (!deps.allowBooking) return;
  const release =
    (fn: (s: KvSelector, id: string) => void) => async (c: import("hono").Context) => {
      const { request_id } = parseBody(ReleaseSchema, await readJsonBody(c.req.raw));
      // Every model's KV selector shares one routing state, so any of them releases it.
      const selector = deps.registry.models().map((m) => m.selector as Partial<KvSelector>)
        .find((s) => s.mode === "kv");
      if (selector !== undefined) fn(selector as KvSelector, request_id);
      return c.json({ request_id });
    };
  app.post("/v1/route/mark_prefill_complete", release((s, id) => s.onFirstToken(id)));
  app.post("/v1/route/free", release((s, id) => s.onFinished(id)));
}

function kvSelectorOf(model: ServedModel): KvSelector {
  const selector = model.selector as Partial<KvSelector>;
  if (selector.mode !== "kv" || selector.explain === undefined) {
    throw new DynamoError(
      "invalid_request",
      "route_needs_kv_mode",
      "POST /v1/route explains KV-aware routing; start the frontend with --router-mode kv",
    );
  }
  return selector as KvSelector;
}
