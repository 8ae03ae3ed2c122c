import type { z } from "zod";
import { DynamoError } from "../errors/mod.ts";

/** Parses a request body, turning the first schema violation into a 400 that names the field. */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const param = formatPath(issue.path);
  throw new DynamoError(
    "invalid_request",
    "invalid_field",
    param === "" ? `Invalid request: ${issue.message}` : `Invalid '${param}': ${issue.message}`,
    { param: param === "" ? undefined : param },
  );
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out === "" ? String(part) : `.${String(part)}`;
  }
  return out;
}

/** Reads a JSON body; a body that is not JSON is a 400, not a 500. */
export async function readJsonBody(request: Request): Promise<unknown> {
  const text = await request.text();
  try {
    return JSON.parse(text);
  } catch {
    throw new DynamoError("invalid_request", "invalid_json", "Request body is not valid JSON");
  }
}
