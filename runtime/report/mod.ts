/**
 * Reports shared by `dynamo sim` and `dynamo bench`: the JSON schema, summarising
 * per-request samples into it, a readable summary, the HTML page with plots, and the
 * side-by-side comparison.
 * @module
 */
export type { LatencyStats, Report, RequestSample, WorkerStats } from "./report.ts";
export { latencyStats, percentile, summarize, type SummaryInfo } from "./summarize.ts";
export { formatComparison, formatSummary } from "./format.ts";
export { renderHtml } from "./html.ts";
