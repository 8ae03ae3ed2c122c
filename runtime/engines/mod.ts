/**
 * Engines: the Engine interface workers drive and its implementations: the in-process
 * mocker, and external engines (vLLM, SGLang, TensorRT-LLM) that run as supervised
 * processes, plus stand-in servers for each of them (the mocker behind the engine's own
 * command line, HTTP API and KV events) for tests. Does not know about discovery or the
 * request plane.
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
  lastFlagValue,
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
  checkSglangExtraArgs,
  createSglangEngine,
  SGLANG_DEFAULT_PAGE_SIZE,
  type SglangEngineOptions,
} from "./sglang/mod.ts";
export {
  createSglangStandIn,
  parseSglangServerArgs,
  type SglangServerArgs,
  type SglangStandIn,
} from "./sglang_api/mod.ts";
export {
  checkTrtllmExtraArgs,
  createTrtllmEngine,
  splitTrtllmOptionsFile,
  TRTLLM_DEFAULT_TOKENS_PER_BLOCK,
  type TrtllmEngineOptions,
} from "./trtllm/mod.ts";
export {
  createTrtllmStandIn,
  parseTrtllmServeArgs,
  type TrtllmServeArgs,
  type TrtllmStandIn,
} from "./trtllm_api/mod.ts";
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
