/**
 * Observability: structured logs and Prometheus metrics (through prom-client). Metric names
 * follow Dynamo's (`dynamo_frontend_*`, `dynamo_component_*`); each role owns its registry.
 * @module
 */
export { getLogLevel, LOG_LEVELS, Logger, type LogLevel, setLogLevel, setLogSink } from "./log.ts";
export { Counter, Gauge, Histogram, Registry } from "prom-client";
export { exponentialBuckets } from "./buckets.ts";
