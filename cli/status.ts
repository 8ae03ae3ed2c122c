import { FileDiscovery } from "../runtime/discovery/mod.ts";
import { BUCKETS, type EndpointInstance, type ModelInstance } from "../runtime/protocol/mod.ts";
import type { Command } from "./command.ts";
import { COMMON_FLAGS, resolveCommon } from "./common.ts";

/** One row of `dynamo status`: an instance and what it serves. */
export interface StatusRow {
  readonly namespace: string;
  readonly component: string;
  readonly endpoint: string;
  readonly instance_id: number;
  readonly instance_id_hex: string;
  readonly model: string | null;
  readonly role: string | null;
  readonly engine: string | null;
  readonly address: string;
  readonly hostname: string | null;
  readonly pid: number | null;
}

export const statusCommand: Command = {
  name: "status",
  summary: "List the instances and models registered in discovery",
  usage: "[--json] [--discovery-dir DIR] [--namespace NS | --all-namespaces]",
  flags: [
    ...COMMON_FLAGS,
    {
      name: "json",
      type: "boolean",
      default: false,
      help: "Print a JSON array instead of a table",
    },
    {
      name: "all-namespaces",
      type: "boolean",
      default: false,
      help: "Show every namespace, not just --namespace",
    },
  ],
  async run(args) {
    const common = resolveCommon(args);
    const discovery = await FileDiscovery.open({ rootDir: common.discoveryDir });
    try {
      const [instances, models] = await Promise.all([
        discovery.list(BUCKETS.instances),
        discovery.list(BUCKETS.models),
      ]);
      const all = args.values["all-namespaces"] === true;
      const rows = statusRows(
        [...instances.values()].filter((v): v is EndpointInstance => v.type === "Endpoint"),
        [...models.values()].filter((v): v is ModelInstance => v.type === "Model"),
      ).filter((r) => all || r.namespace === common.namespace);
      console.log(args.values["json"] === true ? JSON.stringify(rows, null, 2) : formatTable(rows));
      return 0;
    } finally {
      await discovery.close();
    }
  },
};

/** Joins endpoint records with the model cards registered under the same instance. */
export function statusRows(endpoints: EndpointInstance[], models: ModelInstance[]): StatusRow[] {
  const byId = new Map(models.map((m) => [m.instance_id, m]));
  return endpoints.map((e) => {
    const m = byId.get(e.instance_id);
    return {
      namespace: e.namespace,
      component: e.component,
      endpoint: e.endpoint,
      instance_id: e.instance_id,
      instance_id_hex: e.instance_id.toString(16),
      model: m?.card_json.display_name ?? null,
      role: m?.card_json.role ?? null,
      engine: m?.card_json.engine ?? null,
      address: e.transport.tcp.split("/")[0]!,
      hostname: e.hostname ?? null,
      pid: e.pid ?? null,
    };
  }).sort((a, b) =>
    `${a.namespace}/${a.component}/${a.model}`.localeCompare(
      `${b.namespace}/${b.component}/${b.model}`,
    ) ||
    a.instance_id - b.instance_id
  );
}

function formatTable(rows: StatusRow[]): string {
  if (rows.length === 0) return "No instances registered.";
  const header = [
    "NAMESPACE",
    "COMPONENT",
    "INSTANCE",
    "MODEL",
    "ROLE",
    "ENGINE",
    "ADDRESS",
    "HOST",
    "PID",
  ];
  const body = rows.map((r) => [
    r.namespace,
    r.component,
    r.instance_id_hex,
    r.model ?? "-",
    r.role ?? "-",
    r.engine ?? "-",
    r.address,
    r.hostname ?? "-",
    r.pid === null ? "-" : String(r.pid),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
  return [header, ...body].map((row) =>
    row.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()
  )
    .join("\n");
}
