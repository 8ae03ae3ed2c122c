/**
 * What the engine stand-ins (`dynamo mocker --api sglang|trtllm`) share: the mocker built
 * as the engine would set itself up from its command line, and the plumbing that runs one
 * HTTP request on it (cancelled when the client goes away, streamed as server-sent events
 * at the client's pace). Does not know any engine's API or bind sockets.
 * @module
 */
export { EngineCall, type SseRendering, sseResponse } from "./engine_call.ts";
export {
  argvError,
  boolArg,
  type EngineArgv,
  type EngineArgvSpec,
  type FlagKind,
  intArg,
  numberArg,
  parseEngineArgv,
  stringArg,
} from "./engine_argv.ts";
export {
  createStandInMocker,
  type StandInMocker,
  type StandInMockerSpec,
} from "./stand_in_mocker.ts";
