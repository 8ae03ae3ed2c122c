import { z } from "zod";
import { DynamoError } from "../errors/mod.ts";
import type { SessionSpec, Workload } from "./workload.ts";

/** One line of a Mooncake trace (FAST'25 release). */
const TraceLineSchema = z.object({
  timestamp: z.number().nonnegative(),
  input_length: z.number().int().positive(),
  output_length: z.number().int().nonnegative(),
  hash_ids: z.array(z.number().int().nonnegative()).min(1),
});
export type TraceLine = z.infer<typeof TraceLineSchema>;

/** Most lines read from one trace. */
export const MAX_TRACE_LINES = 10_000_000;

/** Parses Mooncake JSONL; a bad line is an invalid_request naming its line number. */
export function parseMooncakeTrace(text: string, source: string): TraceLine[] {
  const out: TraceLine[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === "") continue;
    if (out.length >= MAX_TRACE_LINES) {
      throw new DynamoError(
        "invalid_request",
        "trace_too_long",
        `Trace ${source} has more than ${MAX_TRACE_LINES} lines`,
      );
    }
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch {
      throw new DynamoError(
        "invalid_request",
        "invalid_trace",
        `Invalid trace ${source}, line ${i + 1}: not JSON`,
      );
    }
    const parsed = TraceLineSchema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new DynamoError(
        "invalid_request",
        "invalid_trace",
        `Invalid trace ${source}, line ${i + 1}: ${
          issue.path.join(".") || "(line)"
        }: ${issue.message}`,
      );
    }
    out.push(parsed.data);
  }
  return out;
}

/** The vocabulary synthetic trace tokens are drawn from (ids that exist in common tokenizers). */
export const TRACE_TOKEN_BASE = 1000;
export const TRACE_TOKEN_RANGE = 100_000;

/**
 * The deterministic tokens of one trace block: `blockSize` tokens that depend only on the
 * hash id and the position, so requests sharing leading hash ids share a token prefix, and
 * distinct ids never collide on a block. Writes `out[start .. start + count)`.
 */
export function traceBlockTokens(
  hashId: number,
  out: number[],
  start: number,
  count: number,
): void {
  let x = (Math.imul(hashId + 1, 0x9e3779b1) ^ 0x85ebca6b) | 0 || 1;
  for (let j = 0; j < count; j++) {
    // xorshift32, seeded per block; kept in int32 so V8 stays on integer arithmetic.
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[start + j] = TRACE_TOKEN_BASE + ((x >>> 0) % TRACE_TOKEN_RANGE);
  }
}

/** A request's prompt: each hash id expanded to `blockSize` tokens, cut to input_length. */
export function traceTokens(line: TraceLine, blockSize: number): number[] {
  const n = line.input_length;
  const out = new Array<number>(n).fill(TRACE_TOKEN_BASE);
  let pos = 0;
  for (const id of line.hash_ids) {
    if (pos >= n) break;
    const count = Math.min(blockSize, n - pos);
    traceBlockTokens(id, out, pos, count);
    pos += count;
  }
  return out;
}

/**
 * A trace as a workload: one single-turn session per line, arriving at
 * `timestamp / arrivalSpeedup`, asking for exactly `output_length` tokens.
 */
export function traceWorkload(
  lines: readonly TraceLine[],
  options: { blockSize: number; arrivalSpeedup: number; description: string; maxRequests?: number },
): Workload {
  const n = Math.min(lines.length, options.maxRequests ?? lines.length);
  const sessions: SessionSpec[] = [];
  for (let i = 0; i < n; i++) {
    const line = lines[i]!;
    sessions.push({
      id: `trace-${i}`,
      arrivalMs: line.timestamp / options.arrivalSpeedup,
      turns: [{
        newTokens: traceTokens(line, options.blockSize),
        maxTokens: Math.max(1, line.output_length),
        delayMs: 0,
      }],
    });
  }
  return { description: options.description, sessions, mode: { kind: "open" } };
}

/**
 * The trace's own prefix reuse with an unbounded cache: leading hash ids already seen in
 * earlier lines, over all hash ids (the README's 36.64% for conversation_trace.jsonl).
 */
export function tracePrefixReuse(lines: readonly TraceLine[]): number {
  const seen = new Set<number>();
  let hits = 0;
  let total = 0;
  for (const line of lines) {
    let k = 0;
    while (k < line.hash_ids.length && seen.has(line.hash_ids[k]!)) k++;
    hits += k;
    total += line.hash_ids.length;
    for (const id of line.hash_ids) seen.add(id);
  }
  return total === 0 ? 0 : hits / total;
}
