import { DynamoError } from "../errors/mod.ts";

/** One server-sent event: its type (`message` unless an `event:` field said otherwise) and data. */
export interface SseEvent {
  readonly event: string;
  /** The `data:` lines joined with "\n". */
  readonly data: string;
}

/** Default bound on one event (its pending lines and data), in bytes of text. */
export const DEFAULT_MAX_EVENT_BYTES = 16 * 1024 * 1024;

/**
 * An incremental parser of `text/event-stream` (the WHATWG rules): feed it the body's bytes
 * as they arrive, in chunks split anywhere (inside a line, between `\r` and `\n`, inside a
 * UTF-8 sequence); it returns the events completed by each chunk. Lines end with `\n`, `\r\n`
 * or `\r`; `data:` lines accumulate, a blank line dispatches, `:` lines are comments, one
 * space after the colon is dropped. An event growing past `maxEventBytes` is an error, so a
 * server that never sends a blank line cannot make the client buffer without bound.
 */
export class SseParser {
  readonly #decoder = new TextDecoder();
  readonly #maxEventBytes: number;
  #partial = "";
  #data = "";
  #hasData = false;
  #event = "";
  /** The previous chunk ended with `\r`: a `\n` opening the next one belongs to it. */
  #skipLf = false;

  constructor(options: { maxEventBytes?: number } = {}) {
    this.#maxEventBytes = options.maxEventBytes ?? DEFAULT_MAX_EVENT_BYTES;
  }

  /** Parses the next chunk; returns the events it completed, in order. */
  push(chunk: Uint8Array | string): SseEvent[] {
    let text = typeof chunk === "string" ? chunk : this.#decoder.decode(chunk, { stream: true });
    const out: SseEvent[] = [];
    if (this.#skipLf && text.length > 0) {
      if (text.charCodeAt(0) === 10) text = text.slice(1);
      this.#skipLf = false;
    }
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      const line = start === 0 && this.#partial !== ""
        ? this.#partial + text.slice(0, i)
        : text.slice(start, i);
      if (start === 0) this.#partial = "";
      this.#line(line, out);
      if (c === 13) {
        if (i + 1 < text.length) {
          if (text.charCodeAt(i + 1) === 10) i++;
        } else this.#skipLf = true;
      }
      start = i + 1;
    }
    if (start < text.length) {
      this.#partial = start === 0 ? this.#partial + text : text.slice(start);
      if (this.#partial.length + this.#data.length > this.#maxEventBytes) throw this.#tooLarge();
    }
    return out;
  }

  /**
   * Ends the stream. Leniently (the standard discards it), an event whose blank line never
   * came is still returned, as some servers end with `data: [DONE]\n` and close.
   */
  end(): SseEvent[] {
    const out: SseEvent[] = [];
    const tail = this.#decoder.decode();
    const last = this.#partial + tail;
    this.#partial = "";
    if (last !== "") this.#line(last, out);
    this.#line("", out);
    return out;
  }

  #line(line: string, out: SseEvent[]): void {
    if (line === "") {
      if (this.#hasData) {
        out.push({ event: this.#event === "" ? "message" : this.#event, data: this.#data });
      }
      this.#data = "";
      this.#hasData = false;
      this.#event = "";
      return;
    }
    if (line.charCodeAt(0) === 58) return; // ":" comment
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    if (field === "data") {
      this.#data = this.#hasData ? `${this.#data}\n${value}` : value;
      this.#hasData = true;
      if (this.#data.length > this.#maxEventBytes) throw this.#tooLarge();
    } else if (field === "event") this.#event = value;
    // `id` and `retry` matter to reconnecting EventSource clients, not to one completion.
  }

  #tooLarge(): DynamoError {
    return new DynamoError(
      "invalid_request",
      "sse_event_too_large",
      `Cannot parse the event stream: an event exceeds ${this.#maxEventBytes} bytes`,
    );
  }
}
