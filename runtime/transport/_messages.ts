import { DynamoError, type WireError } from "../errors/mod.ts";

/** The request-plane protocol version each side announces in its first frame. */
export const PROTOCOL_VERSION = 1;

/**
 * The request plane's messages, one per frame, tagged by `t`. Only the client opens streams;
 * `s` is the stream id, from a per-connection counter on the client.
 */
export type Message =
  | { readonly t: "hello"; readonly v: number }
  | {
    readonly t: "open";
    readonly s: number;
    readonly endpoint: string;
    readonly headers: Readonly<Record<string, string>>;
    readonly payload: unknown;
    readonly window: number;
  }
  | { readonly t: "item"; readonly s: number; readonly data: unknown }
  | { readonly t: "end"; readonly s: number }
  | { readonly t: "error"; readonly s: number; readonly error: WireError }
  | { readonly t: "cancel"; readonly s: number }
  | { readonly t: "credit"; readonly s: number; readonly n: number }
  | { readonly t: "ping" }
  | { readonly t: "pong" };

export type MessageType = Message["t"];

/**
 * Checks a decoded frame body and returns it as a Message. Throws a DynamoError
 * (`unavailable`, `protocol_error`) for anything else: the caller closes the connection.
 */
export function parseMessage(value: unknown): Message {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw violation("frame is not a map");
  }
  const m = value as Record<string, unknown>;
  switch (m.t) {
    case "hello":
      if (!isCount(m.v)) throw violation("hello without a version");
      return { t: "hello", v: m.v };
    case "open":
      if (typeof m.endpoint !== "string") throw violation("open without an endpoint");
      if (!isHeaders(m.headers)) throw violation("open with headers that are not strings");
      if (!isCount(m.window) || m.window === 0) throw violation("open without a window");
      return {
        t: "open",
        s: streamId(m),
        endpoint: m.endpoint,
        headers: m.headers,
        payload: m.payload,
        window: m.window,
      };
    case "item":
      return { t: "item", s: streamId(m), data: m.data };
    case "end":
    case "cancel":
      return { t: m.t, s: streamId(m) };
    case "error":
      if (!isWireError(m.error)) throw violation("error without a class, reason and message");
      return { t: "error", s: streamId(m), error: m.error };
    case "credit":
      if (!isCount(m.n) || m.n === 0) throw violation("credit without a positive count");
      return { t: "credit", s: streamId(m), n: m.n };
    case "ping":
    case "pong":
      return { t: m.t };
    default:
      throw violation(`unknown message type ${JSON.stringify(String(m.t)).slice(0, 40)}`);
  }
}

function streamId(m: Record<string, unknown>): number {
  if (!isCount(m.s) || m.s === 0) throw violation(`${String(m.t)} without a stream id`);
  return m.s;
}

function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

function isHeaders(value: unknown): value is Record<string, string> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  return Object.values(value).every((v) => typeof v === "string");
}

function isWireError(value: unknown): value is WireError {
  if (typeof value !== "object" || value === null) return false;
  const e = value as Record<string, unknown>;
  return typeof e.class === "string" && typeof e.reason === "string" &&
    typeof e.message === "string" && (e.param === undefined || typeof e.param === "string");
}

function violation(detail: string): DynamoError {
  return new DynamoError(
    "unavailable",
    "protocol_error",
    `Cannot read request-plane frame: ${detail}`,
  );
}
