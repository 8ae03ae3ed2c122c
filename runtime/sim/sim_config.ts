import type { MockerOptionsInput } from "../engines/mod.ts";
import type { RequestSample } from "../report/mod.ts";
import type { KvRouterConfig, RouterMode } from "../router/mod.ts";

/** Most engines one simulation runs. */
export const MAX_SIM_WORKERS = 4096;

/** A simulated cluster: N identical mocker engines behind one router. */
export interface SimConfig {
  /** Engines in the cluster; their instance ids are 1..workers. */
  readonly workers: number;
  /**
   * Engine settings, as `dynamo worker`'s mocker flags set them. Each engine's own seed is
   * derived from `seed` and its index; requests carry their own output seed anyway.
   */
  readonly engine: MockerOptionsInput;
  readonly routerMode: RouterMode;
  /** KV router settings (used in kv mode); their seed is replaced by `seed`. */
  readonly kvRouter: KvRouterConfig;
  /** Seeds the router, the engines and every request's output. */
  readonly seed: number;
  /** Send requests with ignore_eos, so each produces exactly its max_tokens. */
  readonly ignoreEos: boolean;
}

/** One request's record: the report's sample plus its id (`<session id>#<turn>`). */
export interface SimSample extends RequestSample {
  readonly requestId: string;
  /** Error reason (machine-readable) when not ok. */
  readonly errorReason?: string;
}

export interface SimWorkerStats {
  /** `worker-N`, N its instance id (zero-padded when there are ten or more). */
  readonly worker: string;
  readonly instanceId: number;
  /** Most KV blocks referenced by running requests at once, measured after each pass. */
  readonly peakKvBlocks: number;
  readonly kvTotalBlocks: number;
  readonly passes: number;
  readonly preemptions: number;
}

/** What a simulation produced; `simReport` turns it into the shared Report. */
export interface SimResult {
  /** One per request sent (or refused), in completion order. */
  readonly samples: readonly SimSample[];
  readonly workers: readonly SimWorkerStats[];
  readonly blockSizeTokens: number;
  /** Virtual time when the last event happened. */
  readonly endMs: number;
  /** Engine passes over all workers. */
  readonly passes: number;
  /** KV events the engines emitted and the router's index applied (kv mode with events). */
  readonly kvEventsApplied: number;
  /** Requests the KV router's admission queue parked before routing them. */
  readonly routerParked: number;
  /** Most sessions in flight at once. */
  readonly maxSessionsInFlight: number;
}
