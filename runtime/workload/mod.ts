/**
 * Workloads shared by `dynamo sim` and `dynamo bench`: Mooncake trace replay and synthetic
 * sessions (ISL/OSL distributions, shared prefixes, multi-turn, Poisson or closed loop),
 * as token ids. Drivers decide how to send them (virtual time, or HTTP).
 * @module
 */
export {
  type LoadMode,
  type SessionSpec,
  turnPrompt,
  type TurnSpec,
  type Workload,
} from "./workload.ts";
export {
  MAX_TRACE_LINES,
  parseMooncakeTrace,
  TRACE_TOKEN_BASE,
  TRACE_TOKEN_RANGE,
  traceBlockTokens,
  type TraceLine,
  tracePrefixReuse,
  traceTokens,
  traceWorkload,
} from "./trace.ts";
export {
  type Distribution,
  parseDistribution,
  sample,
  type SyntheticSpec,
  syntheticWorkload,
} from "./synthetic.ts";
