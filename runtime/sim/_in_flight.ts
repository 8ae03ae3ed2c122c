import { DynamoError } from "../errors/mod.ts";
import type { MockerOutput } from "../engines/mod.ts";
import type { EngineRequest, FinishReason } from "../protocol/mod.ts";
import type { RouteRequest } from "../router/mod.ts";
import { seedFrom } from "../util/mod.ts";
import type { EngineSlot } from "./_engine_slot.ts";
import type { SimSample } from "./sim_config.ts";
import { SIM_EOS_TOKEN_ID } from "./sim_vocabulary.ts";
import type { SimSession } from "./sim_workload.ts";

/** A session being played: which turn is next and the conversation so far. Private to sim/. */
export interface SessionRun {
  readonly session: SimSession;
  turn: number;
  /** Earlier prompts and answers (null until a turn with a successor has finished). */
  history: readonly number[] | null;
}

/** A request from dispatch to its last token: what its sample is built from. */
export interface InFlight {
  /** `<session id>#<turn>`. */
  readonly id: string;
  readonly run: SessionRun;
  readonly route: RouteRequest;
  readonly maxTokens: number;
  readonly startMs: number;
  /** Output tokens, kept only when a later turn needs them. */
  readonly output: number[] | null;
  readonly itlMs: number[];
  slot: EngineSlot | null;
  firstTokenMs: number;
  lastTokenMs: number;
  outputTokens: number;
  /** From the engine's usage on the first output (-1 until then). */
  cachedTokens: number;
}

export function newInFlight(
  run: SessionRun,
  prompt: readonly number[],
  maxTokens: number,
  nowMs: number,
): InFlight {
  const id = `${run.session.id}#${run.turn}`;
  return {
    id,
    run,
    route: { requestId: id, tokenIds: prompt },
    maxTokens,
    startMs: nowMs,
    output: run.turn + 1 < run.session.turnCount ? [] : null,
    itlMs: [],
    slot: null,
    firstTokenMs: -1,
    lastTokenMs: -1,
    outputTokens: 0,
    cachedTokens: -1,
  };
}

/** What the frontend would send the worker for this request. */
export function engineRequestOf(req: InFlight, seed: number, ignoreEos: boolean): EngineRequest {
  return {
    request_id: req.id,
    model: "sim",
    token_ids: req.route.tokenIds as number[],
    stop_conditions: {
      max_tokens: req.maxTokens,
      min_tokens: 0,
      ignore_eos: ignoreEos,
      stop_token_ids: [],
    },
    // Each request's output depends on the seed and its id only, not on where it runs,
    // so router modes are compared on the same conversations.
    sampling_options: {
      temperature: null,
      top_p: null,
      top_k: null,
      seed: seedFrom(`${seed}/${req.id}`),
    },
    eos_token_ids: [SIM_EOS_TOKEN_ID],
  };
}

/**
 * Records one engine output at `nowMs` (tokens, gaps, cached tokens); returns true when it
 * carried the request's first token.
 */
export function recordOutput(req: InFlight, out: MockerOutput, nowMs: number): boolean {
  const n = out.tokenIds.length;
  let first = false;
  if (n > 0) {
    if (req.firstTokenMs < 0) {
      first = true;
      req.firstTokenMs = nowMs;
      for (let k = 1; k < n; k++) req.itlMs.push(0);
    } else {
      const gap = (nowMs - req.lastTokenMs) / n;
      for (let k = 0; k < n; k++) req.itlMs.push(gap);
    }
    req.lastTokenMs = nowMs;
    req.outputTokens += n;
    if (req.output !== null) { for (const t of out.tokenIds) req.output.push(t); }
  }
  if (out.usage !== undefined && req.cachedTokens < 0) {
    req.cachedTokens = out.usage.prompt_tokens_details?.cached_tokens ?? 0;
  }
  return first;
}

/** The sample of a request the engine finished; ok when it ended normally with output. */
export function finishedSample(req: InFlight, reason: FinishReason, nowMs: number): SimSample {
  const ok = (reason === "length" || reason === "stop") && req.outputTokens > 0;
  return {
    requestId: req.id,
    ok,
    ...(ok ? {} : { errorType: "engine_error", errorReason: `finish_${reason}` }),
    startMs: req.startMs,
    ...(req.firstTokenMs >= 0 ? { firstTokenMs: req.firstTokenMs } : {}),
    endMs: nowMs,
    itlMs: req.itlMs,
    inputTokens: req.route.tokenIds.length,
    outputTokens: req.outputTokens,
    cachedTokens: Math.max(0, req.cachedTokens),
    worker: req.slot!.name,
  };
}

/** The sample of a request the router or the engine refused (a DynamoError; else rethrown). */
export function refusedSample(req: InFlight, err: unknown, nowMs: number): SimSample {
  if (!(err instanceof DynamoError)) throw err;
  return {
    requestId: req.id,
    ok: false,
    errorType: err.errorClass,
    errorReason: err.reason,
    startMs: req.startMs,
    endMs: nowMs,
    inputTokens: req.route.tokenIds.length,
    outputTokens: 0,
  };
}
