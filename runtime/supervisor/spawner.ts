/** A running child process as the supervisor sees it. */
export interface ChildProcessHandle {
  readonly pid: number;
  /** Resolves when the process exits. */
  readonly status: Promise<{ code: number; signal: string | null }>;
  kill(signal: Deno.Signal): void;
  /** The child's stdout and stderr, merged line by line. */
  readonly lines: AsyncIterable<string>;
}

/** Starts processes; a fake in tests, Deno.Command in production. */
export interface Spawner {
  spawn(argv: readonly string[], options: { env: Record<string, string> }): ChildProcessHandle;
}

/**
 * Spawns real processes with piped output. Children started by `dynamo serve` also watch
 * their parent (DYN_PARENT_PID) and exit if it dies, so none outlive a killed supervisor.
 */
export const denoSpawner: Spawner = {
  spawn(argv, options) {
    const child = new Deno.Command(argv[0]!, {
      args: argv.slice(1),
      env: options.env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const status = child.status.then((s) => ({ code: s.code, signal: s.signal }));
    return {
      pid: child.pid,
      status,
      kill: (signal) => {
        try {
          child.kill(signal);
        } catch {
          // Already exited.
        }
      },
      lines: mergeLines([child.stdout, child.stderr]),
    };
  },
};

/** Splits byte streams into lines and interleaves them as they arrive. */
async function* mergeLines(streams: ReadableStream<Uint8Array>[]): AsyncIterable<string> {
  const queue: string[] = [];
  let wake: (() => void) | undefined;
  let open = streams.length;
  const pump = async (stream: ReadableStream<Uint8Array>): Promise<void> => {
    let partial = "";
    try {
      for await (const text of stream.pipeThrough(new TextDecoderStream())) {
        const parts = (partial + text).split("\n");
        partial = parts.pop()!;
        queue.push(...parts);
        wake?.();
      }
    } finally {
      if (partial !== "") queue.push(partial);
      open--;
      wake?.();
    }
  };
  for (const s of streams) pump(s).catch(() => {});
  for (;;) {
    while (queue.length > 0) yield queue.shift()!;
    if (open === 0) return;
    await new Promise<void>((r) => (wake = r));
    wake = undefined;
  }
}
