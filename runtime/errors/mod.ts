/**
 * Errors: the one classified error type of the runtime, and its rendering to OpenAI's error
 * envelope. Does not log or decide retries.
 * @module
 */
export {
  asDynamoError,
  DynamoError,
  type DynamoErrorOptions,
  ERROR_CLASSES,
  type ErrorClass,
  isConnectFailure,
  isWorkerLost,
  type WireError,
} from "./dynamo_error.ts";
export { httpStatusOf, type OpenAIErrorBody, toOpenAIErrorBody } from "./openai_error.ts";
