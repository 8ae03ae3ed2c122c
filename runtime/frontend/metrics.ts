import { type ErrorClass } from "../errors/mod.ts";
import { Counter, exponentialBuckets, Gauge, Histogram, Registry } from "../observability/mod.ts";

export type EndpointName = "chat_completions" | "completions";

/** Dynamo's `error_type` label for each error class. */
const ERROR_TYPE: Readonly<Record<ErrorClass, string>> = {
  invalid_request: "validation",
  not_found: "not_found",
  unavailable: "overload",
  overloaded: "overload",
  cancelled: "cancelled",
  timeout: "response_timeout",
  engine_error: "internal",
  internal: "internal",
};

/** The frontend's Prometheus metrics, named as Dynamo names them (`dynamo_frontend_*`). */
export class FrontendMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<string>;
  readonly inflight: Gauge<string>;
  readonly ttftSeconds: Histogram<string>;
  readonly itlSeconds: Histogram<string>;
  readonly durationSeconds: Histogram<string>;
  readonly inputTokens: Histogram<string>;
  readonly outputTokens: Histogram<string>;
  readonly cachedTokens: Histogram<string>;
  readonly outputTokensTotal: Counter<string>;
  readonly disconnectedClients: Counter<string>;
  readonly workerActiveDecodeBlocks: Gauge<string>;
  readonly workerActivePrefillTokens: Gauge<string>;
  readonly workerKvUsedBlocks: Gauge<string>;
  readonly workerKvTotalBlocks: Gauge<string>;
  readonly workerRequestsRunning: Gauge<string>;
  readonly workerRequestsWaiting: Gauge<string>;

  constructor(prefix = "dynamo_frontend") {
    const registers = [this.registry];
    const model = ["model"];
    this.requests = new Counter({
      name: `${prefix}_requests_total`,
      help: "Requests handled, by model, endpoint, request type, status and error type",
      labelNames: ["model", "endpoint", "request_type", "status", "error_type"],
      registers,
    });
    this.inflight = new Gauge({
      name: `${prefix}_inflight_requests`,
      help: "Requests currently being processed",
      labelNames: model,
      registers,
    });
    const hist = (name: string, help: string, buckets: number[]) =>
      new Histogram({ name: `${prefix}_${name}`, help, labelNames: model, buckets, registers });
    this.ttftSeconds = hist(
      "time_to_first_token_seconds",
      "Time from request arrival to its first output token",
      exponentialBuckets(0.001, 480, 22),
    );
    this.itlSeconds = hist(
      "inter_token_latency_seconds",
      "Time between consecutive output tokens",
      exponentialBuckets(0.0005, 2, 20),
    );
    this.durationSeconds = hist(
      "request_duration_seconds",
      "Time from request arrival to its last byte",
      exponentialBuckets(0.01, 600, 20),
    );
    this.inputTokens = hist(
      "input_sequence_tokens",
      "Prompt length in tokens",
      exponentialBuckets(1, 262144, 19),
    );
    this.outputTokens = hist(
      "output_sequence_tokens",
      "Completion length in tokens",
      exponentialBuckets(1, 65536, 17),
    );
    this.cachedTokens = hist(
      "cached_tokens",
      "Prompt tokens served from the engine's prefix cache",
      exponentialBuckets(1, 262144, 19),
    );
    this.outputTokensTotal = new Counter({
      name: `${prefix}_output_tokens_total`,
      help: "Output tokens generated",
      labelNames: model,
      registers,
    });
    this.disconnectedClients = new Counter({
      name: `${prefix}_disconnected_clients`,
      help: "Clients that disconnected before their response completed",
      registers,
    });
    const worker = (name: string, help: string) =>
      new Gauge({
        name: `${prefix}_worker_${name}`,
        help,
        labelNames: ["worker_id", "dp_rank", "worker_type"],
        registers,
      });
    this.workerActiveDecodeBlocks = worker(
      "active_decode_blocks",
      "KV blocks held by the worker's running requests",
    );
    this.workerActivePrefillTokens = worker(
      "active_prefill_tokens",
      "Prompt tokens the worker has yet to prefill",
    );
    this.workerKvUsedBlocks = worker("kv_used_blocks", "KV blocks in use on the worker");
    this.workerKvTotalBlocks = worker(
      "kv_total_blocks",
      "KV cache capacity of the worker, in blocks",
    );
    this.workerRequestsRunning = worker(
      "requests_running",
      "Requests the worker's engine is running",
    );
    this.workerRequestsWaiting = worker(
      "requests_waiting",
      "Requests queued in the worker's engine",
    );
  }

  /** Counts one finished request; `errorClass` undefined means success. */
  countRequest(
    labels: { model: string; endpoint: EndpointName; stream: boolean },
    errorClass: ErrorClass | undefined,
  ): void {
    this.requests.inc({
      model: labels.model,
      endpoint: labels.endpoint,
      request_type: labels.stream ? "stream" : "unary",
      status: errorClass === undefined ? "success" : "error",
      error_type: errorClass === undefined ? "" : ERROR_TYPE[errorClass],
    });
  }
}
