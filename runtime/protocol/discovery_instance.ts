import { z } from "zod";
import { ModelCardSchema } from "./model_card.ts";

/** Discovery buckets, laid out as Dynamo lays them out (`v1/instances`, `v1/mdc`, …). */
export const BUCKETS = {
  instances: "v1/instances",
  models: "v1/mdc",
  eventChannels: "v1/event_channels",
} as const;
export type Bucket = typeof BUCKETS[keyof typeof BUCKETS];

const InstanceIdSchema = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);

const ProcessInfo = {
  /** Host name and pid of the registering process; `dynamo status` shows them. */
  hostname: z.string().optional(),
  pid: z.number().int().optional(),
};

/** A request-plane endpoint served by one process. */
export const EndpointInstanceSchema = z.object({
  type: z.literal("Endpoint"),
  namespace: z.string(),
  component: z.string(),
  endpoint: z.string(),
  instance_id: InstanceIdSchema,
  /** `{"tcp": "host:port/{instance_id hex}/{endpoint}"}`, as Dynamo writes it. */
  transport: z.object({ tcp: z.string() }),
  ...ProcessInfo,
});
export type EndpointInstance = z.infer<typeof EndpointInstanceSchema>;

/** A model served by an endpoint instance. */
export const ModelInstanceSchema = z.object({
  type: z.literal("Model"),
  namespace: z.string(),
  component: z.string(),
  endpoint: z.string(),
  instance_id: InstanceIdSchema,
  card_json: ModelCardSchema,
  ...ProcessInfo,
});
export type ModelInstance = z.infer<typeof ModelInstanceSchema>;

/** An event-plane publisher (a ZeroMQ PUB socket). */
export const EventChannelInstanceSchema = z.object({
  type: z.literal("EventChannel"),
  namespace: z.string(),
  component: z.string(),
  topic: z.string(),
  instance_id: InstanceIdSchema,
  transport: z.object({
    kind: z.literal("zmq"),
    config: z.object({ endpoint: z.string() }),
  }),
  ...ProcessInfo,
});
export type EventChannelInstance = z.infer<typeof EventChannelInstanceSchema>;

export const DiscoveryInstanceSchema = z.discriminatedUnion("type", [
  EndpointInstanceSchema,
  ModelInstanceSchema,
  EventChannelInstanceSchema,
]);
export type DiscoveryInstance = z.infer<typeof DiscoveryInstanceSchema>;

/** `{ns}/{component}/{endpoint|topic}/{instance_id as lowercase hex}`: Dynamo's key layout. */
export function discoveryKey(
  namespace: string,
  component: string,
  name: string,
  instanceId: number,
): string {
  return `${namespace}/${component}/${name}/${instanceId.toString(16)}`;
}

/** Parses `host:port/{id_hex}/{endpoint}` into its parts. */
export function parseTcpTransport(
  address: string,
): { host: string; port: number; instanceIdHex: string; endpoint: string } | undefined {
  const m = /^(\[[^\]]+\]|[^:/]+):(\d+)\/([0-9a-f]+)\/(.+)$/.exec(address);
  if (m === null) return undefined;
  return {
    host: m[1]!.replace(/^\[|\]$/g, ""),
    port: Number(m[2]),
    instanceIdHex: m[3]!,
    endpoint: m[4]!,
  };
}
