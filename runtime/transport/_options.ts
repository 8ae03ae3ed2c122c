import { DynamoError } from "../errors/mod.ts";

/** Returns `value` if it is a positive safe integer, else throws naming the option. */
export function requirePositiveInt(what: string, name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new DynamoError(
      "invalid_request",
      "invalid_option",
      `${what}: ${name} must be a positive integer, got ${String(value)}`,
      { param: name },
    );
  }
  return value;
}
