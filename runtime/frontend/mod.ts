/**
 * Frontend: the OpenAI-compatible HTTP API (a Hono app built as a value), the model registry
 * that follows discovery, preprocessing (chat template, tokenization), the request pipeline
 * (pre-route stages, worker selection, dispatch) and response rendering (SSE or JSON).
 * Binding a socket is the CLI's job.
 * @module
 */
export { createFrontendApp, type FrontendDeps } from "./app.ts";
export {
  addressOf,
  type FrontendConfig,
  type FrontendRole,
  startFrontendRole,
} from "./frontend_role.ts";
export { registerRouteApi, type RouteAnswer } from "./route_api.ts";
export { WorkerLoadMonitor } from "./worker_load_monitor.ts";
export { FrontendMetrics } from "./metrics.ts";
export { ModelRegistry, type ServedModel, type ServingWorker } from "./model_registry.ts";
export { Pipeline, type PreRouteStage, type StreamCaller } from "./pipeline.ts";
