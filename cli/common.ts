import { defaultDiscoveryDir } from "../runtime/discovery/mod.ts";
import { ENV, readEnv } from "../runtime/config/env.ts";
import { DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_MAX_FRAME_BYTES } from "../runtime/transport/mod.ts";
import { LOG_LEVELS, type LogLevel, setLogLevel } from "../runtime/observability/mod.ts";
import { type FlagSpec, type ParsedArgs, UsageError } from "./flags.ts";

/** Flags every role takes. */
export const COMMON_FLAGS: readonly FlagSpec[] = [
  {
    name: "discovery-dir",
    type: "string",
    env: ENV.fileKvDir,
    valueName: "dir",
    help: "Discovery directory shared by every role of a deployment (NFS for multi-node)",
  },
  {
    name: "namespace",
    type: "string",
    env: ENV.namespace,
    default: "dynamo",
    valueName: "ns",
    help: "Discovery namespace; roles only see others in the same namespace",
  },
  {
    name: "log-level",
    type: "string",
    env: ENV.logLevel,
    default: "info",
    choices: LOG_LEVELS,
    valueName: "level",
    help: "Log verbosity",
  },
];

export interface CommonConfig {
  readonly discoveryDir: string;
  readonly namespace: string;
  readonly logLevel: LogLevel;
}

/** Resolves the common flags and applies the log level. */
export function resolveCommon(args: ParsedArgs): CommonConfig {
  const config: CommonConfig = Object.freeze({
    discoveryDir: (args.values["discovery-dir"] as string | undefined) ?? defaultDiscoveryDir(),
    namespace: args.values["namespace"] as string,
    logLevel: args.values["log-level"] as LogLevel,
  });
  setLogLevel(config.logLevel);
  return config;
}

/**
 * Resolves when SIGINT or SIGTERM arrives (or the parent dies, see `watchParent`).
 * `dispose()` stops the parent watch but leaves the signal handlers in place, absorbing
 * further signals: removing them would restore the default action, and a second SIGTERM
 * in the last moments of an orderly shutdown (a supervisor that repeats itself) would turn
 * exit code 0 into death by signal. Only for a process's own entry point, which exits soon
 * after.
 */
export function shutdownSignal(): { promise: Promise<string>; dispose(): void } {
  let resolve!: (name: string) => void;
  const promise = new Promise<string>((r) => (resolve = r));
  // Under `dynamo serve` (DYN_PARENT_PID set), Ctrl-C reaches every process of the
  // terminal's group; a child ignores it and waits for serve's orderly SIGTERM, so serve
  // never mistakes a child's exit for a crash and restarts it.
  const supervised = readEnv(ENV.parentPid) !== undefined;
  const handlers: [Deno.Signal, () => void][] = [
    ["SIGTERM", () => resolve("SIGTERM")],
    ["SIGINT", supervised ? () => {} : () => resolve("SIGINT")],
  ];

  for (const [sig, h] of handlers) Deno.addSignalListener(sig, h);
  const stopParentWatch = watchParent(() => resolve("parent exited"));
  return {
    promise,
    dispose() {
      stopParentWatch();
    },
  };
}

/**
 * When started by `dynamo serve` (DYN_PARENT_PID set), calls `onGone` if that parent dies,
 * so a SIGKILLed supervisor never leaves orphaned roles behind.
 */
export function watchParent(onGone: () => void): () => void {
  const expected = Number(readEnv(ENV.parentPid) ?? "");
  if (!Number.isInteger(expected) || expected <= 0) return () => {};
  const timer = setInterval(() => {
    if (Deno.ppid !== expected) {
      clearInterval(timer);
      onGone();
    }
  }, 500);
  Deno.unrefTimer(timer);
  return () => clearInterval(timer);
}

/** Request-plane limits from the environment (Dynamo's variable names). */
export function requestPlaneLimits(): { maxFrameBytes: number; connectTimeoutMs: number } {
  return {
    maxFrameBytes: envNumber(ENV.tcpMaxMessageSize, DEFAULT_MAX_FRAME_BYTES, 1024, 1),
    connectTimeoutMs: envNumber(
      ENV.tcpConnectTimeout,
      DEFAULT_CONNECT_TIMEOUT_MS / 1000,
      0.01,
      1000,
    ),
  };
}

function envNumber(
  name: typeof ENV[keyof typeof ENV],
  fallback: number,
  min: number,
  scale: number,
): number {
  const raw = readEnv(name);
  if (raw === undefined) return fallback * scale;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min) {
    throw new UsageError(
      `Invalid value for ${name}: "${raw}" (expected a number of at least ${min})`,
    );
  }
  return Math.round(value * scale);
}
