import { z } from "zod";
import { DynamoError } from "../errors/mod.ts";
import type { Report } from "../report/mod.ts";

const Stats = z.object({
  mean: z.number(),
  p50: z.number(),
  p90: z.number(),
  p99: z.number(),
  min: z.number(),
  max: z.number(),
  count: z.number(),
});

/** The fields comparisons read; the rest of a report passes through unchecked. */
const ReportSchema = z.looseObject({
  kind: z.enum(["sim", "bench"]),
  label: z.string(),
  requests: z.number(),
  errors: z.number(),
  ttft_ms: Stats,
  itl_ms: Stats,
  e2e_ms: Stats,
  throughput: z.looseObject({ requests_per_s: z.number(), output_tokens_per_s: z.number() }),
  prefix_cache_hit_rate: z.number().nullable(),
  goodput: z.looseObject({ requests_per_s: z.number() }).nullable(),
});

/**
 * Parses a report file written by `dynamo bench` or `dynamo sim`; anything else is an
 * invalid_request naming the source and the first bad field.
 */
export function parseReportJson(text: string, source: string): Report {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new DynamoError(
      "invalid_request",
      "invalid_report",
      `Invalid report "${source}": not JSON`,
    );
  }
  const parsed = ReportSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new DynamoError(
      "invalid_request",
      "invalid_report",
      `Invalid report "${source}": ${issue.path.join(".") || "(root)"}: ${issue.message}`,
    );
  }
  return parsed.data as unknown as Report;
}
