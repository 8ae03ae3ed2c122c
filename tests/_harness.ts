/**
 * Helpers for end-to-end tests: they start the real CLI (`./dynamo`) as processes on
 * 127.0.0.1 and talk to them with real clients.
 */
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("..", import.meta.url));
export const DYNAMO = `${ROOT}dynamo`;
export const QUICKSTART = `${ROOT}recipes/quickstart.yaml`;
export const MODEL = "Qwen/Qwen3-0.6B";

/** A port that was free a moment ago (the OS picks it). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Runs the CLI to completion and captures its output. */
export async function runDynamo(
  args: string[],
  options: { env?: Record<string, string>; cwd?: string } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(DYNAMO, {
    args,
    env: options.env,
    cwd: options.cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** A long-running CLI process whose output lines are kept for assertions and debugging. */
export class RunningDynamo {
  readonly child: Deno.ChildProcess;
  readonly lines: string[] = [];
  readonly #waiters: { re: RegExp; resolve: (line: string) => void }[] = [];
  readonly #pumps: Promise<void>[];

  constructor(args: string[], env: Record<string, string> = {}) {
    this.child = new Deno.Command(DYNAMO, {
      args,
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#pumps = [this.#pump(this.child.stdout), this.#pump(this.child.stderr)];
  }

  async #pump(stream: ReadableStream<Uint8Array>): Promise<void> {
    let partial = "";
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      const parts = (partial + text).split("\n");
      partial = parts.pop()!;
      for (const line of parts) this.#line(line);
    }
    if (partial !== "") this.#line(partial);
  }

  #line(line: string): void {
    if (this.lines.length < 20_000) this.lines.push(line);
    for (const w of [...this.#waiters]) {
      if (w.re.test(line)) {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  }

  /** Resolves with the first output line (past or future) matching `re`, or fails after `timeoutMs`. */
  waitForLine(re: RegExp, timeoutMs: number): Promise<string> {
    const seen = this.lines.find((l) => re.test(l));
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          new Error(
            `No output line matched ${re} within ${timeoutMs} ms:\n${
              this.lines.slice(-30).join("\n")
            }`,
          ),
        );
      }, timeoutMs);
      this.#waiters.push({
        re,
        resolve: (line) => {
          clearTimeout(timer);
          resolve(line);
        },
      });
    });
  }

  /** Sends `signal` and waits for exit (SIGKILL after `timeoutMs`). */
  async stop(signal: Deno.Signal = "SIGTERM", timeoutMs = 30_000): Promise<Deno.CommandStatus> {
    try {
      this.child.kill(signal);
    } catch {
      // Already gone.
    }
    const killer = setTimeout(() => {
      try {
        this.child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
    }, timeoutMs);
    const status = await this.child.status;
    clearTimeout(killer);
    await Promise.all(this.#pumps);
    return status;
  }
}

/** True while a process with this pid exists (and is not a zombie). */
export function processAlive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
}

/** Polls `check` until it returns a value, or fails after `timeoutMs`. */
export async function eventually<T>(
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs: number,
  what: string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) {
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}
