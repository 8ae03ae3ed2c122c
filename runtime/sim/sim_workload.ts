import {
  type LoadMode,
  type TraceLine,
  traceTokens,
  type TurnSpec,
  type Workload,
} from "../workload/mod.ts";

/**
 * A session as the simulator reads it: its turns are produced on demand, so a trace of
 * 12,000 requests averaging 12,000 prompt tokens never holds all its prompts at once
 * (about 145 million token ids; only the prompts of requests in flight are alive).
 */
export interface SimSession {
  readonly id: string;
  /** When the first turn is sent (open loop), in ms from the start. */
  readonly arrivalMs: number;
  readonly turnCount: number;
  /** Turn `index` (0-based); may build its tokens on every call. */
  turn(index: number): TurnSpec;
}

/** A workload whose sessions produce their turns lazily. */
export interface SimWorkload {
  readonly description: string;
  readonly sessions: readonly SimSession[];
  readonly mode: LoadMode;
}

/** Wraps an in-memory workload (synthetic, or anything built with the workload module). */
export function simWorkloadOf(workload: Workload): SimWorkload {
  return {
    description: workload.description,
    mode: workload.mode,
    sessions: workload.sessions.map((s) => ({
      id: s.id,
      arrivalMs: s.arrivalMs,
      turnCount: s.turns.length,
      turn: (index: number) => s.turns[index]!,
    })),
  };
}

/**
 * A Mooncake trace as a lazy workload: the same sessions, ids, arrival times, tokens and
 * output lengths as `traceWorkload`, with each prompt expanded (`traceTokens`) only when
 * its request is sent. Open loop by default; a closed-loop mode replays the lines in order
 * at a fixed concurrency, ignoring their timestamps.
 */
export function traceSimWorkload(
  lines: readonly TraceLine[],
  options: {
    blockSize: number;
    arrivalSpeedup: number;
    description: string;
    maxRequests?: number;
    mode?: LoadMode;
  },
): SimWorkload {
  const n = Math.min(lines.length, options.maxRequests ?? lines.length);
  const sessions: SimSession[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const line = lines[i]!;
    sessions[i] = {
      id: `trace-${i}`,
      arrivalMs: line.timestamp / options.arrivalSpeedup,
      turnCount: 1,
      turn: () => ({
        newTokens: traceTokens(line, options.blockSize),
        maxTokens: Math.max(1, line.output_length),
        delayMs: 0,
      }),
    };
  }
  return {
    description: options.description,
    sessions,
    mode: options.mode ?? { kind: "open" },
  };
}
