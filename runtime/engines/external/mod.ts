/**
 * External engines: the shared supervision of an inference engine that runs as its own
 * process (vLLM, SGLang, TensorRT-LLM). Owns launching it in its own process
 * group with an orphan watchdog, the bounded wait for readiness, restarts with backoff,
 * stopping it, and the `Engine` that routes requests to the current launch. What differs
 * per engine (command line, readiness, HTTP API, metrics) is an `ExternalEngineAdapter`.
 * @module
 */
export type {
  ExternalEngineAdapter,
  KvEventEndpoint,
  LaunchPorts,
  ProbeResult,
  ScrapedLoad,
} from "./engine_adapter.ts";
export {
  detachedLauncher,
  type DetachedLauncherOptions,
  type EngineProcess,
  type ExitStatus,
  type LaunchSpec,
  type ProcessLauncher,
  stopEngineProcess,
  WATCHDOG_SCRIPT,
} from "./engine_process.ts";
export {
  DEFAULT_SUPERVISION_POLICY,
  describeExit,
  ENGINE_STOPPING,
  EngineSupervisor,
  type EngineSupervisorDeps,
  type ReadyLaunch,
  type SupervisionPolicy,
  type SupervisorEvent,
} from "./engine_supervisor.ts";
export { checkOwnedFlags, lastFlagValue, positiveIntFlag } from "./engine_args.ts";
export {
  describeError,
  engineErrorMessage,
  engineHttpError,
  engineSseData,
  fetchEngineJson,
  fetchEngineMetrics,
  fetchEngineText,
  MAX_ENGINE_BODY_BYTES,
  metricSum,
  parseEngineChunk,
  postEngineStream,
  readEngineText,
} from "./engine_http.ts";
export { ExternalEngine, type ExternalEngineOptions } from "./external_engine.ts";
export { findExecutable, type FindExecutableOptions } from "./find_executable.ts";
export { pickFreePorts } from "./free_ports.ts";
export { LineTail, readLines } from "./line_tail.ts";
export { findModelDir, type ModelDir } from "./model_dir.ts";
