import { FileDiscovery } from "../runtime/discovery/mod.ts";
import { Logger } from "../runtime/observability/mod.ts";
import { startRouterService } from "../runtime/router_service/mod.ts";
import { RequestPlaneClient } from "../runtime/transport/mod.ts";
import { systemClock, systemRng } from "../runtime/util/mod.ts";
import type { Command } from "./command.ts";
import { COMMON_FLAGS, requestPlaneLimits, resolveCommon, shutdownSignal } from "./common.ts";
import { KV_ROUTER_FLAGS, kvRouterConfig } from "./router_flags.ts";

const log = new Logger("router");

export const routerCommand: Command = {
  name: "router",
  summary: "Run the KV-aware router as a standalone service (POST /v1/route)",
  usage: "[--http-host HOST] [--http-port N] [KV router flags] [--discovery-dir DIR]",
  details: [
    "Follows the workers' KV events and load like an embedded router and answers",
    "POST /v1/route with the chosen worker and each candidate's cost. Frontends started with",
    "--router-url http://HOST:PORT ask it instead of routing themselves, so they share one",
    'index; a gateway can too ({"book": true} books the load; release it with',
    "POST /v1/route/mark_prefill_complete and POST /v1/route/free).",
  ].join("\n"),
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
      default: 8001,
      min: 0,
      max: 65535,
      help: "Port to listen on (0 = any free port)",
    },
    { name: "router-seed", type: "int", min: 0, help: "Seed for tie-breaking and sampling" },
    ...KV_ROUTER_FLAGS,
    ...COMMON_FLAGS,
  ],
  async run(args) {
    const common = resolveCommon(args);
    const discovery = await FileDiscovery.open({ rootDir: common.discoveryDir });
    const caller = new RequestPlaneClient(requestPlaneLimits());
    const seed = (args.values["router-seed"] as number | undefined) ?? systemRng.nextU32();
    const service = await startRouterService({ discovery, caller, clock: systemClock }, {
      namespace: common.namespace,
      kv: kvRouterConfig(args, seed),
    });
    const signal = shutdownSignal();
    const server = Deno.serve({
      hostname: args.values["http-host"] as string,
      port: args.values["http-port"] as number,
      onListen: ({ hostname, port }) =>
        log.info("Router listening", {
          url: `http://${hostname}:${port}/v1/route`,
          namespace: common.namespace,
        }),
    }, service.app.fetch);
    const why = await signal.promise;
    log.info("Shutting down", { reason: why });
    await server.shutdown();
    await service.close();
    await caller.close();
    await discovery.close();
    signal.dispose();
    return 0;
  },
};
