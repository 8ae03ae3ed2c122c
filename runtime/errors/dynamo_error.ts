/** The closed set of error classes that may cross any boundary of the runtime. */
export const ERROR_CLASSES = [
  "invalid_request",
  "not_found",
  "unavailable",
  "overloaded",
  "cancelled",
  "timeout",
  "engine_error",
  "internal",
] as const;

export type ErrorClass = typeof ERROR_CLASSES[number];

/** How an error travels on the request plane and in logs. */
export interface WireError {
  readonly class: ErrorClass;
  readonly reason: string;
  readonly message: string;
  readonly param?: string;
}

export interface DynamoErrorOptions {
  /** The request field the error is about (OpenAI's `param`). */
  readonly param?: string;
  /** Seconds after which a retry may succeed; rendered as `Retry-After`. */
  readonly retryAfterS?: number;
  /** The HTTP status to use instead of the class default (e.g. 413 for a body that is too large). */
  readonly httpStatus?: number;
  readonly cause?: unknown;
}

/**
 * The one error type of the runtime. It is classified once, where it happens; nothing
 * downstream inspects message text to decide what it means.
 */
export class DynamoError extends Error {
  readonly errorClass: ErrorClass;
  /** A machine-readable reason in snake_case, e.g. `unknown_model`, `frame_too_large`. */
  readonly reason: string;
  readonly param: string | undefined;
  readonly retryAfterS: number | undefined;
  readonly httpStatusOverride: number | undefined;

  constructor(
    errorClass: ErrorClass,
    reason: string,
    message: string,
    options: DynamoErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "DynamoError";
    this.errorClass = errorClass;
    this.reason = reason;
    this.param = options.param;
    this.retryAfterS = options.retryAfterS;
    this.httpStatusOverride = options.httpStatus;
  }

  /** The form that crosses the request plane. */
  toWire(): WireError {
    const wire: WireError = { class: this.errorClass, reason: this.reason, message: this.message };
    return this.param === undefined ? wire : { ...wire, param: this.param };
  }

  /** Rebuilds an error received from the other end of the request plane. */
  static fromWire(wire: WireError): DynamoError {
    const cls = (ERROR_CLASSES as readonly string[]).includes(wire.class) ? wire.class : "internal";
    return new DynamoError(cls, wire.reason, wire.message, { param: wire.param });
  }
}

/** Wraps anything thrown into a DynamoError; unknown errors become `internal`. */
export function asDynamoError(err: unknown): DynamoError {
  if (err instanceof DynamoError) return err;
  if (err instanceof DOMException && err.name === "AbortError") {
    return new DynamoError("cancelled", "aborted", "Request was cancelled", { cause: err });
  }
  if (err instanceof DOMException && err.name === "TimeoutError") {
    return new DynamoError("timeout", "timed_out", "Operation timed out", { cause: err });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new DynamoError("internal", "unexpected", message, { cause: err });
}

/** Reasons meaning a request never reached an engine: it may safely go to another worker. */
const NOT_STARTED_REASONS: ReadonlySet<string> = new Set([
  "connect_failed",
  "connect_timeout",
  "draining",
]);

/**
 * True for errors that mean "this attempt never reached an engine" (the worker refused the
 * connection, did not answer in time, or is draining), so it may be retried elsewhere.
 */
export function isConnectFailure(err: unknown): boolean {
  return err instanceof DynamoError && err.errorClass === "unavailable" &&
    NOT_STARTED_REASONS.has(err.reason);
}

/**
 * True when the connection to a worker was lost (the worker died or went silent). A request
 * that had produced no output yet may then be retried elsewhere: nothing reached the client.
 */
export function isWorkerLost(err: unknown): boolean {
  return err instanceof DynamoError && err.errorClass === "unavailable" &&
    err.reason === "disconnected";
}
