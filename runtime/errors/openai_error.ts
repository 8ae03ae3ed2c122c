import { DynamoError, type ErrorClass } from "./dynamo_error.ts";

const STATUS_BY_CLASS: Readonly<Record<ErrorClass, number>> = {
  invalid_request: 400,
  not_found: 404,
  unavailable: 503,
  overloaded: 503,
  cancelled: 499,
  timeout: 504,
  engine_error: 502,
  internal: 500,
};

/** OpenAI's `error.type` for each class. */
const OPENAI_TYPE_BY_CLASS: Readonly<Record<ErrorClass, string>> = {
  invalid_request: "invalid_request_error",
  not_found: "not_found_error",
  unavailable: "service_unavailable",
  overloaded: "service_unavailable",
  cancelled: "cancelled",
  timeout: "timeout",
  engine_error: "server_error",
  internal: "server_error",
};

/** The OpenAI error envelope: `{"error": {"message", "type", "param", "code"}}`. */
export interface OpenAIErrorBody {
  readonly error: {
    readonly message: string;
    readonly type: string;
    readonly param: string | null;
    readonly code: string | null;
  };
}

/** The HTTP status for an error. */
export function httpStatusOf(err: DynamoError): number {
  return err.httpStatusOverride ?? STATUS_BY_CLASS[err.errorClass];
}

/**
 * Renders an error for a client. Internal errors keep their diagnostics out of the body:
 * operators find them in the logs, clients get a generic sentence.
 */
export function toOpenAIErrorBody(err: DynamoError): OpenAIErrorBody {
  const message = err.errorClass === "internal"
    ? "Internal server error; see the frontend's log for details"
    : err.message;
  return {
    error: {
      message,
      type: OPENAI_TYPE_BY_CLASS[err.errorClass],
      param: err.param ?? null,
      code: err.reason,
    },
  };
}
