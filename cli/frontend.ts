import { ENV } from "../runtime/config/mod.ts";
import { FileDiscovery } from "../runtime/discovery/mod.ts";
import { startFrontendRole } from "../runtime/frontend/mod.ts";
import { Logger } from "../runtime/observability/mod.ts";
import { ROUTER_MODES, type RouterMode } from "../runtime/router/mod.ts";
import { RequestPlaneClient } from "../runtime/transport/mod.ts";
import { systemClock } from "../runtime/util/mod.ts";
import type { Command } from "./command.ts";
import { COMMON_FLAGS, requestPlaneLimits, resolveCommon, shutdownSignal } from "./common.ts";
import { UsageError } from "./flags.ts";
import { KV_ROUTER_FLAGS, kvRouterConfig } from "./router_flags.ts";

const log = new Logger("frontend");

export const frontendCommand: Command = {
  name: "frontend",
  summary: "Serve the OpenAI-compatible HTTP API and route requests to workers",
  usage: "[--http-host HOST] [--http-port N] [--router-mode MODE] [--discovery-dir DIR]",
  flags: [
    {
      name: "http-host",
      type: "string",
      default: "0.0.0.0",
      valueName: "host",
      help: "Address to listen on",
    },
    {
      name: "http-port",
      type: "int",
      default: 8000,
      min: 0,
      max: 65535,
      env: ENV.httpPort,
      help: "Port to listen on (0 = any free port)",
    },
    {
      name: "router-mode",
      type: "string",
      default: "round-robin",
      choices: ROUTER_MODES,
      env: ENV.routerMode,
      valueName: "mode",
      help: "How to pick a worker for each request",
    },
    {
      name: "router-seed",
      type: "int",
      min: 0,
      help: "Seed for the random router (reproducible runs)",
    },
    {
      name: "max-body-bytes",
      type: "int",
      default: 16 * 1024 * 1024,
      min: 1024,
      help: "Largest request body; larger ones get 413",
    },
    {
      name: "request-timeout-secs",
      type: "number",
      default: 600,
      min: 0,
      exclusiveMin: true,
      help: "Deadline for one request, end to end",
    },
    {
      name: "shutdown-timeout-secs",
      type: "number",
      default: 30,
      min: 0,
      help: "On SIGTERM, how long in-flight requests may finish",
    },
    {
      name: "router-url",
      type: "string",
      valueName: "url",
      help:
        "Ask this standalone router (dynamo router) where each request goes, instead of routing here",
    },
    ...KV_ROUTER_FLAGS,
    ...COMMON_FLAGS,
  ],
  async run(args) {
    const common = resolveCommon(args);
    const discovery = await FileDiscovery.open({ rootDir: common.discoveryDir });
    const caller = new RequestPlaneClient(requestPlaneLimits());
    const routerSeed = args.values["router-seed"] as number | undefined;
    const routerUrl = args.values["router-url"] as string | undefined;
    if (routerUrl !== undefined && !/^https?:\/\/[^/]+/.test(routerUrl)) {
      throw new UsageError(
        `Invalid value for --router-url: "${routerUrl}" (expected http://host:port)`,
      );
    }
    const role = await startFrontendRole({ discovery, caller, clock: systemClock }, {
      namespace: common.namespace,
      routerMode: args.values["router-mode"] as RouterMode,
      routerSeed,
      kv: kvRouterConfig(args, routerSeed ?? 0),
      routerUrl,
      maxBodyBytes: args.values["max-body-bytes"] as number,
      requestTimeoutMs: (args.values["request-timeout-secs"] as number) * 1000,
      followLoad: true,
    });
    const signal = shutdownSignal();
    const host = args.values["http-host"] as string;
    const server = Deno.serve({
      hostname: host,
      port: args.values["http-port"] as number,
      onListen: ({ hostname, port }) =>
        log.info("Frontend listening", {
          url: `http://${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}/v1`,
          router_mode: args.values["router-mode"] as string,
          namespace: common.namespace,
        }),
    }, role.app.fetch);
    const why = await signal.promise;
    log.info("Shutting down", { reason: why });
    role.beginShutdown();
    const timeoutMs = (args.values["shutdown-timeout-secs"] as number) * 1000;
    const drained = await Promise.race([
      server.shutdown().then(() => true),
      new Promise<boolean>((r) => setTimeout(() => r(false), timeoutMs)),
    ]);
    if (!drained) log.warn("In-flight requests did not finish in time", { timeout_ms: timeoutMs });
    await role.close();
    await caller.close();
    await discovery.close();
    signal.dispose();
    return 0;
  },
};
