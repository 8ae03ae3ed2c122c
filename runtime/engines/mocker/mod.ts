/**
 * The mocker: a simulated vLLM-style engine (scheduler, KV block manager, timing model)
 * as a pure core, plus the live shell that runs it against a clock. Does not tokenize
 * text or talk to the network.
 * @module
 */
export { MockerEngine, type MockerEngineDeps, type MockerZmqKvEvents } from "./mocker_engine.ts";
export {
  MockerCore,
  type MockerCoreDeps,
  type MockerPassStats,
  type MockerStep,
} from "./mocker_core.ts";
export {
  type MockerOptions,
  type MockerOptionsInput,
  MockerOptionsSchema,
  resolveMockerOptions,
} from "./mocker_options.ts";
export { buildMockerVocabulary, type MockerVocabulary } from "./output_tokens.ts";
export type { MockerOutput } from "./scheduler.ts";
export {
  decodeTimeMs,
  passDurationMs,
  type PerfModel,
  polynomialPerfModel,
  prefillTimeMs,
} from "./timing.ts";
