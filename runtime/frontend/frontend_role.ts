import type { Hono } from "hono";
import type { DiscoveryBackend } from "../discovery/mod.ts";
import { TokenizerCache } from "../llm/mod.ts";
import { parseTcpTransport } from "../protocol/mod.ts";
import {
  createSelector,
  type EventQueryCaller,
  KvEventConsumer,
  type KvRouterConfig,
  KvRoutingState,
  RemoteSelector,
  RouterMetrics,
  type RouterMode,
  type WorkerSelector,
} from "../router/mod.ts";
import { type Clock, randomInstanceId, SeededRng, systemRng } from "../util/mod.ts";
import { createFrontendApp } from "./app.ts";
import { FrontendMetrics } from "./metrics.ts";
import { ModelRegistry } from "./model_registry.ts";
import { Pipeline, type StreamCaller } from "./pipeline.ts";
import { registerRouteApi } from "./route_api.ts";
import { WorkerLoadMonitor } from "./worker_load_monitor.ts";

export interface FrontendConfig {
  readonly namespace: string;
  readonly routerMode: RouterMode;
  /** Seed for randomized routing; undefined picks one at random. */
  readonly routerSeed: number | undefined;
  /** KV router settings (used with routerMode "kv"). */
  readonly kv?: KvRouterConfig;
  /** Ask this standalone router (`dynamo router`) instead of routing here. */
  readonly routerUrl?: string;
  readonly maxBodyBytes: number;
  readonly requestTimeoutMs: number;
  /** Follow the workers' load reports on the event plane (ZeroMQ). */
  readonly followLoad: boolean;
}

export interface FrontendRole {
  readonly app: Hono;
  readonly registry: ModelRegistry;
  readonly metrics: FrontendMetrics;
  /** The KV router's state, in kv mode. */
  readonly kv: KvRoutingState | undefined;
  /** Makes /live answer 503 so balancers stop sending; in-flight requests continue. */
  beginShutdown(): void;
  /** Stops following discovery and the event plane. */
  close(): Promise<void>;
}

type Deps = { discovery: DiscoveryBackend; caller: StreamCaller & EventQueryCaller; clock: Clock };

/**
 * Wires a frontend: the model registry following discovery, one selector per model (and in
 * kv mode the shared routing state and its event consumer), the pipeline over the request
 * plane, metrics, and the Hono app. The caller binds the app.
 */
export async function startFrontendRole(deps: Deps, config: FrontendConfig): Promise<FrontendRole> {
  const controller = new AbortController();
  const seed = config.routerSeed ?? systemRng.nextU32();
  const metrics = new FrontendMetrics();
  const loads = config.followLoad
    ? WorkerLoadMonitor.start(deps.discovery, metrics, { namespace: config.namespace })
    : undefined;
  const kv = config.routerMode === "kv" && config.routerUrl === undefined
    ? new KvRoutingState(
      { ...config.kv!, seed },
      new RouterMetrics(metrics.registry, randomInstanceId().toString(16)),
    )
    : undefined;
  const selectorFor = (card: Parameters<typeof createSelector>[1]["card"]): WorkerSelector => {
    if (config.routerUrl !== undefined) {
      return new RemoteSelector({ url: config.routerUrl, model: card!.display_name });
    }
    return createSelector(config.routerMode, {
      rng: new SeededRng(seed),
      card,
      kv: kv && { state: kv, clock: deps.clock, loadOf: (id) => loads?.get(id) },
    });
  };
  const registry = new ModelRegistry(deps.discovery, {
    namespace: config.namespace,
    tokenizers: new TokenizerCache(),
    createSelector: (card) => selectorFor(card),
  });
  const consumer = kv?.config.useKvEvents
    ? new KvEventConsumer(kv, deps.caller, {
      namespace: config.namespace,
      addressOf: (id) => addressOf(registry, id),
    })
    : undefined;
  registry.onChange(() => {
    const live = new Set(registry.endpoints().map((e) => e.instance_id));
    loads?.retain(live);
    consumer?.syncWorkers(live);
  });
  await registry.start(controller.signal);
  consumer?.start(deps.discovery);
  consumer?.syncWorkers(new Set(registry.endpoints().map((e) => e.instance_id)));
  const pipeline = new Pipeline({ caller: deps.caller, clock: deps.clock });
  let shuttingDown = false;
  const app = createFrontendApp({
    registry,
    pipeline,
    metrics,
    clock: deps.clock,
    namespace: config.namespace,
    maxBodyBytes: config.maxBodyBytes,
    requestTimeoutMs: config.requestTimeoutMs,
    isShuttingDown: () => shuttingDown,
  });
  registerRouteApi(app, { registry, nowMs: () => deps.clock.nowMs(), allowBooking: false });
  return {
    app,
    registry,
    metrics,
    kv,
    beginShutdown: () => {
      shuttingDown = true;
    },
    close: async () => {
      controller.abort();
      await consumer?.close();
      await loads?.close();
    },
  };
}

/** A worker's request-plane address, from its endpoint record. */
export function addressOf(
  registry: ModelRegistry,
  instanceId: number,
): { host: string; port: number } | undefined {
  const endpoint = registry.endpoints().find((e) => e.instance_id === instanceId);
  const parsed = endpoint === undefined ? undefined : parseTcpTransport(endpoint.transport.tcp);
  return parsed === undefined ? undefined : { host: parsed.host, port: parsed.port };
}
