import type { EngineOutput, EngineRequest } from "../../protocol/mod.ts";
import type { Engine } from "../engine.ts";

const encoder = new TextEncoder();

/**
 * One request a stand-in server runs on its engine, started at once (so a request the
 * engine refuses is an HTTP error, not a broken stream), cancellable once.
 */
export class EngineCall {
  readonly request: EngineRequest;
  readonly #abort = new AbortController();
  readonly #outputs: AsyncIterator<EngineOutput>;
  readonly #onCancel: () => void;

  /** `onCancel` runs once when the call is cancelled (to log it as the real engine does). */
  constructor(engine: Engine, request: EngineRequest, onCancel: () => void = () => {}) {
    this.request = request;
    this.#onCancel = onCancel;
    this.#outputs = engine.generate(request, this.#abort.signal)[Symbol.asyncIterator]();
  }

  /** The next output; undefined when the engine's stream ended. */
  async next(): Promise<EngineOutput | undefined> {
    const { done, value } = await this.#outputs.next();
    return done ? undefined : value;
  }

  /** Every output up to the finishing one (for a non-streamed answer). */
  async all(clientGone: AbortSignal): Promise<EngineOutput[]> {
    const onGone = (): void => this.cancel();
    clientGone.addEventListener("abort", onGone, { once: true });
    try {
      const out: EngineOutput[] = [];
      for (;;) {
        const item = await this.next();
        if (item === undefined) return out;
        out.push(item);
        if (item.finish_reason !== undefined) return out;
      }
    } finally {
      clientGone.removeEventListener("abort", onGone);
    }
  }

  /** Aborts the request in the engine (a client that went away). Idempotent. */
  cancel(): void {
    if (this.#abort.signal.aborted) return;
    this.#abort.abort();
    this.#onCancel();
    void this.#outputs.return?.(undefined);
  }
}

/** How a stand-in renders an engine stream as server-sent events. */
export interface SseRendering {
  /** The `data:` payloads for one output (none for an output with nothing to show). */
  readonly output: (out: EngineOutput) => string[];
  /** Payloads after the output that finished the request (a usage chunk). */
  readonly finish: (last: EngineOutput) => string[];
  /** The payload reporting an error inside the already started stream. */
  readonly error: (err: unknown) => string;
  /** Whether the stream ends with `data: [DONE]`. Default true. */
  readonly done?: boolean;
}

/**
 * Streams `call` as server-sent events, pulling an output only when the client reads (so a
 * slow client slows its own request); a client that disconnects cancels the call.
 */
export function sseResponse(call: EngineCall, render: SseRendering): Response {
  let finished = false;
  const body = new ReadableStream<Uint8Array>({
    pull: async (controller) => {
      if (finished) return;
      const payloads: string[] = [];
      try {
        const out = await call.next();
        if (out === undefined) throw new Error("The engine ended the stream without finishing it");
        payloads.push(...render.output(out));
        if (out.finish_reason !== undefined) {
          finished = true;
          payloads.push(...render.finish(out));
        }
      } catch (err) {
        finished = true;
        payloads.push(render.error(err));
      }
      if (finished && render.done !== false) payloads.push("[DONE]");
      for (const p of payloads) controller.enqueue(encoder.encode(`data: ${p}\n\n`));
      if (finished) controller.close();
    },
    cancel: () => call.cancel(),
  });
  return new Response(body, {
    headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" },
  });
}
