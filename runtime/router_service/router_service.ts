import { Hono } from "hono";
import type { DiscoveryBackend } from "../discovery/mod.ts";
import { asDynamoError, DynamoError, httpStatusOf, toOpenAIErrorBody } from "../errors/mod.ts";
import {
  addressOf,
  FrontendMetrics,
  ModelRegistry,
  registerRouteApi,
  WorkerLoadMonitor,
} from "../frontend/mod.ts";
import { TokenizerCache } from "../llm/mod.ts";
import {
  createSelector,
  type EventQueryCaller,
  KvEventConsumer,
  type KvRouterConfig,
  KvRoutingState,
  RouterMetrics,
} from "../router/mod.ts";
import { type Clock, randomInstanceId, SeededRng } from "../util/mod.ts";

export interface RouterService {
  readonly app: Hono;
  readonly registry: ModelRegistry;
  readonly state: KvRoutingState;
  close(): Promise<void>;
}

/**
 * The KV-aware router as a standalone service (`dynamo router`): the same index, event
 * consumer, load tracking and cost function a frontend embeds, behind `POST /v1/route`, so
 * several frontends (`--router-url`) or an external gateway share one view of the caches.
 */
export async function startRouterService(
  deps: { discovery: DiscoveryBackend; caller: EventQueryCaller; clock: Clock },
  config: { namespace: string; kv: KvRouterConfig },
): Promise<RouterService> {
  const controller = new AbortController();
  const metrics = new FrontendMetrics();
  const loads = WorkerLoadMonitor.start(deps.discovery, metrics, { namespace: config.namespace });
  const state = new KvRoutingState(
    config.kv,
    new RouterMetrics(metrics.registry, randomInstanceId().toString(16)),
  );
  const registry = new ModelRegistry(deps.discovery, {
    namespace: config.namespace,
    tokenizers: new TokenizerCache(),
    createSelector: (card) =>
      createSelector("kv", {
        rng: new SeededRng(config.kv.seed),
        card,
        kv: { state, clock: deps.clock, loadOf: (id) => loads.get(id) },
      }),
  });
  const consumer = config.kv.useKvEvents
    ? new KvEventConsumer(state, deps.caller, {
      namespace: config.namespace,
      addressOf: (id) => addressOf(registry, id),
    })
    : undefined;
  registry.onChange(() => {
    const live = new Set(registry.endpoints().map((e) => e.instance_id));
    loads.retain(live);
    consumer?.syncWorkers(live);
  });
  await registry.start(controller.signal);
  consumer?.start(deps.discovery);
  consumer?.syncWorkers(new Set(registry.endpoints().map((e) => e.instance_id)));

  const app = new Hono();
  app.onError((err, c) => {
    const e = asDynamoError(err);
    const headers: Record<string, string> = {};
    if (e.retryAfterS !== undefined) headers["retry-after"] = String(Math.ceil(e.retryAfterS));
    return c.json(toOpenAIErrorBody(e), httpStatusOf(e) as 400, headers);
  });
  app.notFound((c) => {
    const e = new DynamoError(
      "not_found",
      "no_route",
      `No route for ${c.req.method} ${c.req.path}`,
    );
    return c.json(toOpenAIErrorBody(e), 404);
  });
  registerRouteApi(app, { registry, nowMs: () => deps.clock.nowMs(), allowBooking: true });
  app.get("/health", (c) =>
    c.json({
      status: "healthy",
      models: registry.models().map((m) => ({ model: m.name, workers: m.allWorkers().length })),
      index_blocks: state.index.sizeBlocks,
    }));
  app.get(
    "/metrics",
    async (c) =>
      c.body(await metrics.registry.metrics(), 200, {
        "content-type": metrics.registry.contentType,
      }),
  );
  return {
    app,
    registry,
    state,
    close: async () => {
      controller.abort();
      await consumer?.close();
      await loads.close();
    },
  };
}
