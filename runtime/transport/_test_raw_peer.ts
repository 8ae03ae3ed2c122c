/** A hand-driven request-plane peer for tests: speaks frames on a raw socket. */
import { decodeMsgpack, encodeFrame, FrameDecoder } from "./frame_codec.ts";

const MAX_FRAME_BYTES = 1024 * 1024;

/** Reads and writes whole messages on one raw TCP connection. */
export class RawPeer {
  readonly conn: Deno.Conn;
  #decoder = new FrameDecoder(MAX_FRAME_BYTES);
  #messages: Record<string, unknown>[] = [];
  #buffer = new Uint8Array(64 * 1024);

  constructor(conn: Deno.Conn) {
    this.conn = conn;
  }

  async send(message: unknown): Promise<void> {
    const frame = encodeFrame(message, MAX_FRAME_BYTES);
    let offset = 0;
    while (offset < frame.length) offset += await this.conn.write(frame.subarray(offset));
  }

  async sendRaw(bytes: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < bytes.length) offset += await this.conn.write(bytes.subarray(offset));
  }

  /** The next message, or undefined at end of stream. */
  async receive(): Promise<Record<string, unknown> | undefined> {
    while (this.#messages.length === 0) {
      let n: number | null;
      try {
        n = await this.conn.read(this.#buffer);
      } catch {
        return undefined;
      }
      if (n === null) return undefined;
      this.#decoder.push(
        this.#buffer.subarray(0, n),
        (body) => this.#messages.push(decodeMsgpack(body) as Record<string, unknown>),
      );
    }
    return this.#messages.shift();
  }

  /** Reads messages until one has type `t`. */
  async receiveType(t: string): Promise<Record<string, unknown>> {
    for (;;) {
      const m = await this.receive();
      if (m === undefined) throw new Error(`Connection ended before a ${t} message`);
      if (m.t === t) return m;
    }
  }

  /** True once the other side has closed (reads until end of stream). */
  async waitClosed(): Promise<void> {
    while ((await this.receive()) !== undefined) { /* drain */ }
  }

  close(): void {
    try {
      this.conn.close();
    } catch {
      // Already closed.
    }
  }
}

/** A listener on 127.0.0.1 that hands each accepted connection to `serve`. */
export class RawServer {
  readonly listener: Deno.TcpListener;
  readonly port: number;
  #peers: RawPeer[] = [];
  #serving: Promise<void>[] = [];
  #loop: Promise<void>;

  constructor(serve: (peer: RawPeer) => Promise<void>) {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.listener = listener;
    this.port = listener.addr.port;
    this.#loop = (async () => {
      for (;;) {
        let conn: Deno.Conn;
        try {
          conn = await listener.accept();
        } catch {
          return;
        }
        const peer = new RawPeer(conn);
        this.#peers.push(peer);
        this.#serving.push(serve(peer).catch(() => {}));
      }
    })();
  }

  async close(): Promise<void> {
    this.listener.close();
    await this.#loop;
    for (const p of this.#peers) p.close();
    await Promise.all(this.#serving);
  }
}
