import type { ModelCard } from "../protocol/mod.ts";
import type { RouterOverrides } from "./kv_router_config.ts";

export const ROUTER_MODES = ["round-robin", "random", "kv"] as const;
export type RouterMode = typeof ROUTER_MODES[number];

/** A worker that can take a request for a model. */
export interface WorkerCandidate {
  readonly instanceId: number;
  readonly card: ModelCard;
}

/** What a selector sees of a request: enough for cache-aware and load-aware policies. */
export interface RouteRequest {
  readonly requestId: string;
  readonly tokenIds: readonly number[];
  /** Per-request router settings (`nvext.router_config_override`). */
  readonly overrides?: RouterOverrides;
}

/** The chosen worker and, for explainable policies, why. */
export interface RouteDecision {
  readonly instanceId: number;
  /** Per-candidate details (overlap, load, cost) for policies that compute them. */
  readonly explanation?: unknown;
}

/**
 * Chooses a worker for a request. Selection is not dispatch: a selector only answers
 * "which worker, and why"; the pipeline sends. The lifecycle hooks let load-aware policies
 * book a request when it is routed and release it as it progresses.
 */
export interface WorkerSelector {
  readonly mode: string;
  /**
   * Picks one of `candidates` (never empty). A policy with an admission queue may answer
   * later; `signal` cancels the wait. Throws `overloaded` when every worker is busy.
   */
  select(
    request: RouteRequest,
    candidates: readonly WorkerCandidate[],
    signal?: AbortSignal,
  ): RouteDecision | Promise<RouteDecision>;
  /** The request was sent to `instanceId`. */
  onRouted?(request: RouteRequest, instanceId: number): void;
  /** The first output token of the request arrived (its prefill is done). */
  onFirstToken?(requestId: string): void;
  /** The request ended (completed, failed or cancelled). */
  onFinished?(requestId: string): void;
  /** The worker left discovery. */
  onWorkerRemoved?(instanceId: number): void;
}
