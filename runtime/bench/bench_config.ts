import type { Distribution, TraceLine } from "../workload/mod.ts";
import type { BenchEndpoint } from "./conversation.ts";

/**
 * Most requests one point sends (a --duration run stops there too): every sample is kept
 * until the point is summarised, and the summary's spreads stay within the call-stack limit.
 */
export const MAX_REQUESTS_PER_POINT = 100_000;

/** One point of a run: closed loop at a concurrency, Poisson at a rate, or trace timestamps. */
export type LoadPoint =
  | { readonly kind: "closed"; readonly concurrency: number }
  | { readonly kind: "open"; readonly ratePerS: number }
  | { readonly kind: "trace" };

export interface SyntheticLoad {
  readonly kind: "synthetic";
  readonly isl: Distribution;
  readonly osl: Distribution;
  readonly sharedPrefixRatio: number;
  readonly prefixGroups: number;
  readonly turns: number;
  readonly turnIsl: Distribution;
  readonly interTurnDelayMs: number;
}

export interface TraceLoad {
  readonly kind: "trace";
  /** The file, for the report. */
  readonly path: string;
  readonly lines: readonly TraceLine[];
  readonly arrivalSpeedup: number;
  /** Tokens per trace hash id (512 for the Mooncake FAST'25 traces). */
  readonly blockSize: number;
}

/** Everything `dynamo bench` needs, resolved from flags once. */
export interface BenchConfig {
  /** The server's base URL without `/v1`, e.g. `http://127.0.0.1:8000`. */
  readonly baseUrl: string;
  readonly endpoint: BenchEndpoint;
  readonly model: string;
  readonly apiKey: string | null;
  readonly workload: SyntheticLoad | TraceLoad;
  readonly points: readonly LoadPoint[];
  /** Requests per point, or null with a duration. */
  readonly requests: number | null;
  /** Seconds per point, or null with a request count. */
  readonly durationS: number | null;
  /** Requests sent before each point and left out of its report. */
  readonly warmupRequests: number;
  readonly timeoutS: number;
  readonly ignoreEos: boolean;
  readonly askWorkerId: boolean;
  readonly extraBody: Readonly<Record<string, unknown>>;
  readonly sloTtftMs: number | null;
  readonly sloItlMs: number | null;
  /** Open loop: most sessions in flight at once. */
  readonly maxInflight: number;
  readonly seed: number;
  /** The settings as given (flags), recorded in each report's `config`. */
  readonly record: Readonly<Record<string, unknown>>;
}

/** A point's label in reports: `concurrency 16`, `rate 4 req/s`, `trace replay`. */
export function pointLabel(point: LoadPoint): string {
  switch (point.kind) {
    case "closed":
      return `concurrency ${point.concurrency}`;
    case "open":
      return `rate ${point.ratePerS} req/s`;
    case "trace":
      return "trace replay";
  }
}

/** `http://h:8000/v1/` and `http://h:8000` both give `http://h:8000`. */
export function normalizeBaseUrl(url: string): string {
  return url.replace(/\/+$/, "").replace(/\/v1$/, "");
}

/** The endpoint's full URL. */
export function endpointUrl(baseUrl: string, endpoint: BenchEndpoint): string {
  return `${baseUrl}/v1/${endpoint === "chat" ? "chat/completions" : "completions"}`;
}
