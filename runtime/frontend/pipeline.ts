import { DynamoError, isConnectFailure, isWorkerLost } from "../errors/mod.ts";
import { Logger } from "../observability/mod.ts";
import type { EngineOutput, EngineRequest } from "../protocol/mod.ts";
import type { RouteRequest } from "../router/mod.ts";
import type { Clock } from "../util/mod.ts";
import type { ServedModel, ServingWorker } from "./model_registry.ts";

const log = new Logger("frontend.pipeline");

/** The request plane as the pipeline uses it (RequestPlaneClient satisfies this). */
export interface StreamCaller {
  call(
    target: { host: string; port: number },
    endpoint: string,
    payload: unknown,
    options?: { signal?: AbortSignal; headers?: Record<string, string> },
  ): AsyncIterable<unknown>;
}

/**
 * A stage that runs before decode routing. Disaggregated serving plugs its prefill hop in
 * here: it may send a copy of the request to a prefill worker and return the request with
 * the transfer parameters the decode worker needs. The aggregated pipeline has none.
 */
export interface PreRouteStage {
  run(request: EngineRequest, model: ServedModel, signal: AbortSignal): Promise<EngineRequest>;
}

export interface PipelineOptions {
  readonly caller: StreamCaller;
  readonly clock: Clock;
  readonly stages?: readonly PreRouteStage[];
  /** How long a worker that refused a connection stays out of selection. */
  readonly unreachableCooldownMs?: number;
  /**
   * How many workers to try for one request while attempts fail before any output: the
   * worker refused the connection, was draining, or was lost before its first item.
   */
  readonly maxConnectAttempts?: number;
}

/** Where a request went; reported back to the client on request (`nvext.worker_id`). */
export interface DispatchInfo {
  instanceId: number | undefined;
}

/**
 * Sends preprocessed requests to workers: runs the pre-route stages, asks the model's
 * selector for a worker, streams the worker's output, and keeps the selector's load
 * bookkeeping (routed, first token, finished) in step with the stream. A worker that cannot
 * be reached, or that is lost before the request's first output, is skipped and the request
 * goes to another; once output has been passed on, errors are passed on too.
 */
export class Pipeline {
  readonly #options: PipelineOptions;

  constructor(options: PipelineOptions) {
    this.#options = options;
  }

  async *generate(
    model: ServedModel,
    request: EngineRequest,
    signal: AbortSignal,
    info: DispatchInfo = { instanceId: undefined },
  ): AsyncGenerator<EngineOutput> {
    let req = request;
    for (const stage of this.#options.stages ?? []) req = await stage.run(req, model, signal);
    const maxAttempts = this.#options.maxConnectAttempts ?? 3;
    const tried = new Set<number>();
    for (let attempt = 1;; attempt++) {
      const worker = await this.#choose(model, req, tried, signal);
      tried.add(worker.instanceId);
      info.instanceId = worker.instanceId;
      const route = routeRequestOf(req);
      model.selector.onRouted?.(route, worker.instanceId);
      let produced = false;
      let yielded = false;
      try {
        const stream = this.#options.caller.call(
          { host: worker.host, port: worker.port },
          worker.endpoint,
          req,
          { signal, headers: { "request-id": req.request_id } },
        );
        for await (const item of stream) {
          const out = item as EngineOutput;
          if (!produced && out.token_ids.length > 0) {
            produced = true;
            model.selector.onFirstToken?.(req.request_id);
          }
          yielded = true;
          yield out;
        }
        return;
      } catch (err) {
        const lost = !yielded && isWorkerLost(err);
        if (!(lost || isConnectFailure(err)) || attempt >= maxAttempts || signal.aborted) throw err;
        const cooldownMs = this.#options.unreachableCooldownMs ?? 5_000;
        model.markUnreachable(worker.instanceId, this.#options.clock.nowMs() + cooldownMs);
        log.warn(
          lost
            ? "Worker lost before any output; trying another"
            : "Worker unreachable; trying another",
          {
            instance_id: worker.instanceId.toString(16),
            request_id: req.request_id,
            error: err,
          },
        );
      } finally {
        model.selector.onFinished?.(req.request_id);
      }
    }
  }

  async #choose(
    model: ServedModel,
    req: EngineRequest,
    tried: ReadonlySet<number>,
    signal: AbortSignal,
  ): Promise<ServingWorker> {
    const now = this.#options.clock.nowMs();
    const pinned = req.routing?.backend_instance_id;
    if (pinned !== undefined) {
      const worker = model.allWorkers().find((w) => w.instanceId === pinned);
      if (worker === undefined || tried.has(pinned)) {
        throw new DynamoError(
          "not_found",
          "unknown_worker",
          `Cannot route to worker ${pinned}: no such worker serves model "${model.name}"`,
          { param: "nvext.backend_instance_id" },
        );
      }
      return worker;
    }
    const candidates = model.routableWorkers(now).filter((w) => !tried.has(w.instanceId));
    if (candidates.length === 0) {
      throw new DynamoError(
        "unavailable",
        "no_workers",
        `Cannot serve model "${model.name}": no worker is reachable`,
        { retryAfterS: 1 },
      );
    }
    const decision = await model.selector.select(routeRequestOf(req), candidates, signal);
    return candidates.find((w) => w.instanceId === decision.instanceId) ?? candidates[0]!;
  }
}

/** What a selector sees of an engine request. */
export function routeRequestOf(req: EngineRequest): RouteRequest {
  const o = req.router_config_override;
  return {
    requestId: req.request_id,
    tokenIds: req.token_ids,
    ...(o === undefined ? {} : {
      overrides: {
        ...(o.overlap_score_weight === undefined
          ? {}
          : { overlapScoreWeight: o.overlap_score_weight }),
        ...(o.router_temperature === undefined ? {} : { temperature: o.router_temperature }),
      },
    }),
  };
}
