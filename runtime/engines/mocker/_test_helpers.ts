/** Shared fixtures for the mocker's tests. Private to mocker/. */
import type { EngineRequest } from "../../protocol/mod.ts";
import type { MockerCore } from "./mocker_core.ts";
import type { MockerVocabulary } from "./output_tokens.ts";
import type { MockerOutput } from "./scheduler.ts";

/** EOS id of the test vocabulary. */
export const TEST_EOS = 2;
/** Token id of "." in the test vocabulary. */
export const TEST_PERIOD = 13;

/** 40 one-token words (ids 1000..1039) and 10 two-token words. */
export const TEST_VOCABULARY: MockerVocabulary = {
  wordTokenIds: [
    ...Array.from({ length: 40 }, (_, i) => [1000 + i]),
    ...Array.from({ length: 10 }, (_, i) => [2000 + i, 3000 + i]),
  ],
  eosTokenIds: [TEST_EOS],
  sentenceEndTokenIds: [TEST_PERIOD],
  sentenceStartTokenIds: [[4000], [4001]],
};

export interface TestRequestOptions {
  maxTokens?: number;
  minTokens?: number;
  ignoreEos?: boolean;
  stopTokenIds?: number[];
  seed?: number | null;
  temperature?: number | null;
}

/** A request whose prompt is `promptTokenIds` (or `length` tokens from `base`). */
export function testRequest(
  id: string,
  prompt: number[] | { length: number; base?: number },
  options: TestRequestOptions = {},
): EngineRequest {
  const tokenIds = Array.isArray(prompt)
    ? prompt
    : Array.from({ length: prompt.length }, (_, i) => (prompt.base ?? 100) + i);
  return {
    request_id: id,
    model: "mock",
    token_ids: tokenIds,
    stop_conditions: {
      max_tokens: options.maxTokens ?? 16,
      min_tokens: options.minTokens ?? 0,
      ignore_eos: options.ignoreEos ?? true,
      stop_token_ids: options.stopTokenIds ?? [],
    },
    sampling_options: {
      temperature: options.temperature ?? null,
      top_p: null,
      top_k: null,
      seed: options.seed ?? null,
    },
    eos_token_ids: [TEST_EOS],
  };
}

/** Everything one request produced while a core ran. */
export interface RequestResult {
  tokenIds: number[];
  final?: MockerOutput;
  /** Pass number (1-based) of the first token, or 0. */
  firstTokenPass: number;
}

/** Steps `core` until it is idle (at most `maxSteps`), collecting outputs per request. */
export function drain(
  core: MockerCore,
  options: { maxSteps?: number; check?: boolean } = {},
): { results: Map<string, RequestResult>; steps: number; elapsedMs: number } {
  const results = new Map<string, RequestResult>();
  let steps = 0;
  let now = 0;
  const maxSteps = options.maxSteps ?? 100_000;
  while (core.hasWork()) {
    if (steps >= maxSteps) throw new Error(`Core still busy after ${maxSteps} steps`);
    const step = core.step(now);
    steps++;
    now += step.durationMs;
    if (options.check) core.checkInvariants();
    for (const out of step.outputs) {
      const result = results.get(out.requestId) ?? { tokenIds: [], firstTokenPass: 0 };
      results.set(out.requestId, result);
      if (out.tokenIds.length > 0 && result.firstTokenPass === 0) result.firstTokenPass = steps;
      result.tokenIds.push(...out.tokenIds);
      if (out.finishReason !== undefined) {
        if (result.final !== undefined) throw new Error(`Request ${out.requestId} finished twice`);
        result.final = out;
      }
    }
  }
  return { results, steps, elapsedMs: now };
}
