/**
 * A workload: conversations ("sessions") of one or more turns, sent open loop (each session
 * at its arrival time) or closed loop (a fixed number in flight). A single request is a
 * one-turn session. Both `dynamo sim` (virtual time) and `dynamo bench` (HTTP) drive the
 * same workloads, so their reports compare.
 */
export interface TurnSpec {
  /** Token ids appended to the conversation before this turn: its new user message. */
  readonly newTokens: readonly number[];
  /** Output tokens to generate (sent as max_tokens with ignore_eos, so the count is exact). */
  readonly maxTokens: number;
  /** Think time between the previous turn's answer and this turn, in ms. */
  readonly delayMs: number;
}

export interface SessionSpec {
  readonly id: string;
  /** When the first turn is sent (open loop), in ms from the start. */
  readonly arrivalMs: number;
  readonly turns: readonly TurnSpec[];
}

export type LoadMode =
  | { readonly kind: "open" }
  | { readonly kind: "closed"; readonly concurrency: number };

export interface Workload {
  /** A one-line description for reports, e.g. `trace conversation_trace.jsonl ×2`. */
  readonly description: string;
  readonly sessions: readonly SessionSpec[];
  readonly mode: LoadMode;
}

/**
 * The prompt of a turn: everything said so far (earlier turns' prompts and answers) plus
 * this turn's new tokens. Drivers call it with the answers they actually received.
 */
export function turnPrompt(
  history: readonly number[],
  turn: TurnSpec,
): number[] {
  const out = new Array<number>(history.length + turn.newTokens.length);
  for (let i = 0; i < history.length; i++) out[i] = history[i]!;
  for (let i = 0; i < turn.newTokens.length; i++) out[history.length + i] = turn.newTokens[i]!;
  return out;
}
