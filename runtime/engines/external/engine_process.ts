import { DynamoError } from "../../errors/mod.ts";
import { type Clock, systemClock } from "../../util/mod.ts";
import { readLines } from "./line_tail.ts";

/** How a process ended. */
export interface ExitStatus {
  readonly code: number;
  readonly signal: string | null;
}

/** One running engine process as its supervisor sees it. */
export interface EngineProcess {
  readonly pid: number;
  /** Resolves when the process exits. */
  readonly exited: Promise<ExitStatus>;
  /** Its stdout and stderr, line by line, interleaved as they arrive. Read once. */
  readonly lines: AsyncIterable<string>;
  /** Sends `signal` to the process's whole group: the engine and every process it started. */
  signalGroup(signal: Deno.Signal): void;
  /**
   * Tells the orphan watchdog its job is over (call once the group is gone); resolves when
   * the watchdog has exited. Idempotent.
   */
  release(): Promise<void>;
}

/** What to start. */
export interface LaunchSpec {
  readonly argv: readonly string[];
  /** Added to this process's environment. */
  readonly env: Readonly<Record<string, string>>;
  /**
   * Files the command reads, written (absolute path to content) just before it starts: a
   * config whose content depends on the launch's ports (TensorRT-LLM's LLM API options).
   */
  readonly files?: Readonly<Record<string, string>>;
}

/** Starts engine processes; a fake in tests. */
export interface ProcessLauncher {
  launch(spec: LaunchSpec): EngineProcess;
}

/**
 * The orphan watchdog, a POSIX sh loop: it blocks reading its stdin, a pipe whose only
 * writer is the worker. A line means "done, the engine is already gone": exit quietly. End
 * of file means the worker died without cleaning up, even by SIGKILL (the kernel closes its
 * pipes): SIGTERM the engine's process group, then SIGKILL it after the grace period.
 *
 * Why not Linux's PR_SET_PDEATHSIG (e.g. `setpriv --pdeathsig`): it fires when the *thread*
 * that forked the child exits, and Deno spawns from a pool of threads that come and go, so
 * engines would be killed at random; it also reaches only the direct child, not the
 * processes the engine starts. Polling the worker's pid from the engine side would race
 * with pid reuse. EOF on a pipe has neither problem and needs no polling. The watchdog runs
 * in its own session and ignores SIGINT/SIGHUP, so a Ctrl-C or a hangup that kills the
 * worker's process group does not take the watchdog with it. `kill -SIG -PGID` is the form
 * dash accepts (it rejects `--` and `-s SIG -PGID`).
 */
export const WATCHDOG_SCRIPT = [
  'trap "" INT HUP',
  "if read -r _; then exit 0; fi",
  'kill -TERM "-$1" 2>/dev/null || exit 0',
  "i=0",
  'while [ "$i" -lt "$2" ]; do',
  "  sleep 0.1",
  '  kill -0 "-$1" 2>/dev/null || exit 0',
  "  i=$((i+1))",
  "done",
  'kill -KILL "-$1" 2>/dev/null',
  "exit 0",
].join("\n");

export interface DetachedLauncherOptions {
  /** How long the watchdog waits between SIGTERM and SIGKILL of an orphaned engine. */
  readonly orphanGraceMs?: number;
}

/**
 * Starts each engine in a new session (so it leads its own process group, which can be
 * signalled as a whole, and a terminal's Ctrl-C reaches only the worker, which stops the
 * engine in order), with piped output, plus a watchdog (see `WATCHDOG_SCRIPT`) that kills
 * that group if the worker dies without doing so.
 */
export function detachedLauncher(options: DetachedLauncherOptions = {}): ProcessLauncher {
  const graceTicks = Math.max(1, Math.ceil((options.orphanGraceMs ?? 10_000) / 100));
  return {
    launch(spec) {
      const [program, ...args] = spec.argv;
      if (program === undefined) {
        throw new DynamoError("internal", "empty_argv", "Cannot launch engine: empty command");
      }
      for (const [path, content] of Object.entries(spec.files ?? {})) {
        Deno.writeTextFileSync(path, content);
      }
      const child = new Deno.Command(program, {
        args,
        env: { ...spec.env },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        detached: true,
      }).spawn();
      const pgid = child.pid;
      const signalGroup = (signal: Deno.Signal): void => {
        try {
          Deno.kill(-pgid, signal);
        } catch {
          // The group is gone already.
        }
      };
      let watchdog: Deno.ChildProcess;
      try {
        watchdog = new Deno.Command("sh", {
          args: ["-c", WATCHDOG_SCRIPT, "dynamo-engine-watchdog", String(pgid), String(graceTicks)],
          stdin: "piped",
          stdout: "null",
          stderr: "null",
          detached: true,
        }).spawn();
      } catch (err) {
        signalGroup("SIGKILL");
        throw new DynamoError(
          "internal",
          "watchdog_failed",
          `Cannot start the engine's watchdog (sh): ${
            err instanceof Error ? err.message : String(err)
          }`,
        );
      }
      const writer = watchdog.stdin.getWriter();
      let released: Promise<void> | undefined;
      return {
        pid: child.pid,
        exited: child.status.then((s) => ({ code: s.code, signal: s.signal })),
        lines: mergeLines([child.stdout, child.stderr]),
        signalGroup,
        release() {
          released ??= (async () => {
            try {
              await writer.write(new TextEncoder().encode("done\n"));
              await writer.close();
            } catch {
              // The watchdog is gone already.
            }
            await watchdog.status.catch(() => {});
          })();
          return released;
        },
      };
    },
  };
}

/**
 * Stops a process's group: SIGTERM, then SIGKILL if it has not exited after `timeoutMs`;
 * a last SIGKILL to the group takes any child the engine left behind. Resolves once the
 * process has exited (and releases its watchdog).
 */
export async function stopEngineProcess(
  proc: EngineProcess,
  timeoutMs: number,
  clock: Clock = systemClock,
): Promise<ExitStatus> {
  proc.signalGroup("SIGTERM");
  const timer = new AbortController();
  const killed = clock.sleep(timeoutMs, timer.signal).then(
    () => proc.signalGroup("SIGKILL"),
    () => {},
  );
  const status = await proc.exited;
  timer.abort();
  await killed;
  proc.signalGroup("SIGKILL");
  await proc.release();
  return status;
}

/** Interleaves the lines of several byte streams as they arrive. */
async function* mergeLines(streams: ReadableStream<Uint8Array>[]): AsyncGenerator<string> {
  const queue: string[] = [];
  let wake: (() => void) | undefined;
  let open = streams.length;
  const maxQueued = 10_000;
  const pump = async (stream: ReadableStream<Uint8Array>): Promise<void> => {
    try {
      for await (const line of readLines(stream)) {
        // A reader that falls far behind loses the oldest lines, never memory.
        if (queue.length >= maxQueued) queue.shift();
        queue.push(line);
        wake?.();
      }
    } finally {
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
