/**
 * Engines: the Engine interface workers drive and its implementations: the in-process
 * mocker, and external engines (vLLM) that run as supervised processes, plus a vLLM
 * stand-in server for tests. Does not know about discovery or the request plane.
 * @module
 */
export type { Engine, EngineAvailability, EngineInfo, EngineLoad } from "./engine.ts";
export {
  DEFAULT_SUPERVISION_POLICY,
  ExternalEngine,
  type ExternalEngineAdapter,
  type ExternalEngineOptions,
  findExecutable,
  findModelDir,
  type ModelDir,
  type SupervisionPolicy,
} from "./external/mod.ts";
export {
  checkVllmExtraArgs,
  createVllmEngine,
  VLLM_DEFAULT_BLOCK_SIZE,
  type VllmEngineOptions,
  vllmFlagValue,
} from "./vllm/mod.ts";
export { createVllmStandIn, parseVllmServeArgs, type VllmServeArgs } from "./vllm_api/mod.ts";
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
