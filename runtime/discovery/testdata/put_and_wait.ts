/**
 * A worker stand-in for the multi-process test: opens FileDiscovery on `rootDir`, registers
 * one Endpoint under `key`, prints "ready", then stays alive until its stdin closes (so a
 * test that fails before killing it does not leave it running).
 *
 * Usage: deno run -A put_and_wait.ts <rootDir> <instanceId>
 */
import { BUCKETS, discoveryKey } from "../../protocol/mod.ts";
import { FileDiscovery } from "../mod.ts";
import { sampleEndpoint } from "../conformance.ts";

const [rootDir, idText] = Deno.args;
if (rootDir === undefined || idText === undefined) {
  console.error("usage: put_and_wait.ts <rootDir> <instanceId>");
  Deno.exit(2);
}
const instanceId = Number(idText);
const discovery = await FileDiscovery.open({ rootDir, ttlMs: 2_000 });
await discovery.put(
  BUCKETS.instances,
  discoveryKey("dynamo", "backend", "generate", instanceId),
  sampleEndpoint(instanceId),
);
console.log("ready");
// The lease timer is unref'd, so something must hold the process open: reading stdin does.
for await (const _ of Deno.stdin.readable) {
  // Input is ignored; only its end matters.
}
await discovery.close();
