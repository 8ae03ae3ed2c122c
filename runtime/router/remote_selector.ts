import { DynamoError } from "../errors/mod.ts";
import { Logger } from "../observability/mod.ts";
import { RoundRobinSelector } from "./round_robin_selector.ts";
import type { RouteDecision, RouteRequest, WorkerCandidate, WorkerSelector } from "./selector.ts";

const log = new Logger("router.remote");

/**
 * Asks a standalone `dynamo router` where each request goes, so several frontends share
 * one index and one view of load. The router books the load when it answers; this
 * selector tells it when the request's prefill is done and when it ends. If the router
 * cannot be reached, requests fall back to round-robin (logged) rather than failing.
 */
export class RemoteSelector implements WorkerSelector {
  readonly mode = "kv-remote";
  readonly #url: string;
  readonly #model: string;
  readonly #timeoutMs: number;
  readonly #fallback = new RoundRobinSelector();
  #lastWarnMs = 0;

  constructor(options: { url: string; model: string; timeoutMs?: number }) {
    this.#url = options.url.replace(/\/+$/, "");
    this.#model = options.model;
    this.#timeoutMs = options.timeoutMs ?? 2_000;
  }

  async select(
    request: RouteRequest,
    candidates: readonly WorkerCandidate[],
    signal?: AbortSignal,
  ): Promise<RouteDecision> {
    const body = {
      model: this.#model,
      token_ids: request.tokenIds,
      request_id: request.requestId,
      book: true,
      allowed_worker_ids: candidates.map((c) => c.instanceId),
      ...(request.overrides === undefined ? {} : {
        nvext: {
          router_config_override: {
            overlap_score_weight: request.overrides.overlapScoreWeight,
            router_temperature: request.overrides.temperature,
          },
        },
      }),
    };
    let res: Response;
    try {
      res = await this.#post("/v1/route", body, signal);
    } catch (err) {
      if (signal?.aborted) throw err;
      this.#warn("Router unreachable; routing round-robin", err);
      return this.#fallback.select(request, candidates);
    }
    const answer = await res.json() as {
      worker_id?: number;
      error?: { message: string; code: string };
    };
    if (!res.ok) {
      if (res.status === 503) {
        throw new DynamoError(
          "overloaded",
          answer.error?.code ?? "router_busy",
          answer.error?.message ?? "Router busy",
          {
            retryAfterS: 1,
          },
        );
      }
      this.#warn(`Router answered ${res.status}; routing round-robin`, answer.error?.message);
      return this.#fallback.select(request, candidates);
    }
    return { instanceId: answer.worker_id!, explanation: answer };
  }

  onFirstToken(requestId: string): void {
    this.#notify("/v1/route/mark_prefill_complete", requestId);
  }

  onFinished(requestId: string): void {
    this.#notify("/v1/route/free", requestId);
  }

  #notify(path: string, requestId: string): void {
    this.#post(path, { request_id: requestId }).then((r) => r.body?.cancel()).catch((err) =>
      this.#warn(`Cannot tell the router ${path}`, err)
    );
  }

  #post(path: string, body: unknown, signal?: AbortSignal): Promise<Response> {
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    return fetch(`${this.#url}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      signal: signal === undefined ? timeout : AbortSignal.any([signal, timeout]),
    });
  }

  #warn(message: string, err: unknown): void {
    const now = Date.now();
    if (now - this.#lastWarnMs < 10_000) return;
    this.#lastWarnMs = now;
    log.warn(message, { url: this.#url, error: err instanceof Error ? err.message : String(err) });
  }
}
