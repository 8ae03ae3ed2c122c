/**
 * Every environment variable the runtime reads, in one place. Names follow Dynamo's where
 * Dynamo has one. Values are read once, at the edge (cli/), and validated there.
 */
export const ENV = {
  /** Discovery directory (file backend). */
  fileKvDir: "DYN_FILE_KV",
  /** Discovery namespace. */
  namespace: "DYN_NAMESPACE",
  /** Log level: off, error, warn, info, debug, trace. */
  logLevel: "DYN_LOG",
  /** Host the request plane binds and advertises (`auto` picks the first non-loopback IPv4). */
  tcpRpcHost: "DYN_TCP_RPC_HOST",
  /** Port the request plane binds (0 = any free port). */
  tcpRpcPort: "DYN_TCP_RPC_PORT",
  /** Largest request-plane frame, in bytes (default 32 MiB). */
  tcpMaxMessageSize: "DYN_TCP_MAX_MESSAGE_SIZE",
  /** Seconds a request-plane connect may take before the worker counts as unreachable (default 3). */
  tcpConnectTimeout: "DYN_TCP_CONNECT_TIMEOUT",
  /** Set by `dynamo serve` for its children: they exit if this process dies. */
  parentPid: "DYN_PARENT_PID",
  /** Frontend HTTP port. */
  httpPort: "DYN_HTTP_PORT",
  /** Router mode for frontends. */
  routerMode: "DYN_ROUTER_MODE",
} as const;

export type EnvName = typeof ENV[keyof typeof ENV];

/** Reads an environment variable, treating an empty value as unset. */
export function readEnv(name: EnvName): string | undefined {
  const value = Deno.env.get(name);
  return value === undefined || value === "" ? undefined : value;
}
