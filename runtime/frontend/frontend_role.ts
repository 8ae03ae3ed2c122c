import type { Hono } from "hono";
import type { DiscoveryBackend } from "../discovery/mod.ts";
import { TokenizerCache } from "../llm/mod.ts";
import { createSelector, type RouterMode } from "../router/mod.ts";
import { type Clock, SeededRng, systemRng } from "../util/mod.ts";
import { createFrontendApp } from "./app.ts";
import { FrontendMetrics } from "./metrics.ts";
import { ModelRegistry } from "./model_registry.ts";
import { Pipeline, type StreamCaller } from "./pipeline.ts";
import { WorkerLoadMonitor } from "./worker_load_monitor.ts";

export interface FrontendConfig {
  readonly namespace: string;
  readonly routerMode: RouterMode;
  /** Seed for randomized routing; undefined picks one at random. */
  readonly routerSeed: number | undefined;
  readonly maxBodyBytes: number;
  readonly requestTimeoutMs: number;
  /** Follow the workers' load reports on the event plane (ZeroMQ). */
  readonly followLoad: boolean;
}

export interface FrontendRole {
  readonly app: Hono;
  readonly registry: ModelRegistry;
  readonly metrics: FrontendMetrics;
  /** Makes /live answer 503 so balancers stop sending; in-flight requests continue. */
  beginShutdown(): void;
  /** Stops following discovery and the event plane. */
  close(): Promise<void>;
}

/**
 * Wires a frontend: the model registry following discovery, one selector per model, the
 * pipeline over the request plane, metrics, and the Hono app. The caller binds the app.
 */
export async function startFrontendRole(
  deps: { discovery: DiscoveryBackend; caller: StreamCaller; clock: Clock },
  config: FrontendConfig,
): Promise<FrontendRole> {
  const controller = new AbortController();
  const seed = config.routerSeed ?? systemRng.nextU32();
  const registry = new ModelRegistry(deps.discovery, {
    namespace: config.namespace,
    tokenizers: new TokenizerCache(),
    createSelector: () => createSelector(config.routerMode, { rng: new SeededRng(seed) }),
  });
  await registry.start(controller.signal);
  const metrics = new FrontendMetrics();
  const loads = config.followLoad
    ? WorkerLoadMonitor.start(deps.discovery, metrics, { namespace: config.namespace })
    : undefined;
  if (loads !== undefined) {
    registry.onChange(() => {
      loads.retain(new Set(registry.endpoints().map((e) => e.instance_id)));
    });
  }
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
  return {
    app,
    registry,
    metrics,
    beginShutdown: () => {
      shuttingDown = true;
    },
    close: async () => {
      controller.abort();
      await loads?.close();
    },
  };
}
