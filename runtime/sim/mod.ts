/**
 * The simulator behind `dynamo sim`: a deterministic discrete-event simulation, in virtual
 * time, of N mocker engines behind one router, driven by a workload (a Mooncake trace or a
 * synthetic one). It runs the live roles' cores (the router's selectors and routing state,
 * the mocker's scheduler, KV manager and timing model), not copies of them. Does not read
 * files, flags or the wall clock: the CLI does, and times the run.
 * @module
 */
export { EventQueue, MAX_PENDING_EVENTS, type TimedEvent } from "./event_queue.ts";
export {
  MAX_SIM_WORKERS,
  type SimConfig,
  type SimResult,
  type SimSample,
  type SimWorkerStats,
} from "./sim_config.ts";
export { simulate } from "./simulation.ts";
export { formatSimExtra, simReport, type SimReportInfo } from "./sim_report.ts";
export { SIM_EOS_TOKEN_ID, SIM_PROMPT_VOCABULARY, SIM_VOCABULARY } from "./sim_vocabulary.ts";
export {
  type SimSession,
  type SimWorkload,
  simWorkloadOf,
  traceSimWorkload,
} from "./sim_workload.ts";
