/**
 * Engines: the Engine interface workers drive and its implementations (the mocker today).
 * Does not know about discovery or the request plane.
 * @module
 */
export type { Engine, EngineInfo, EngineLoad } from "./engine.ts";
export {
  buildMockerVocabulary,
  decodeTimeMs,
  MockerCore,
  type MockerCoreDeps,
  MockerEngine,
  type MockerEngineDeps,
  type MockerOptions,
  type MockerOptionsInput,
  MockerOptionsSchema,
  type MockerOutput,
  type MockerPassStats,
  type MockerStep,
  type MockerVocabulary,
  type MockerZmqKvEvents,
  passDurationMs,
  type PerfModel,
  polynomialPerfModel,
  prefillTimeMs,
  resolveMockerOptions,
} from "./mocker/mod.ts";
