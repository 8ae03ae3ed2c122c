import { Logger } from "../observability/mod.ts";
import type { Clock } from "../util/mod.ts";
import type { ChildProcessHandle, Spawner } from "./spawner.ts";

const log = new Logger("serve");

export interface ChildSpec {
  /** Name used in output prefixes and logs, e.g. `frontend`, `mocker-0`. */
  readonly name: string;
  readonly argv: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
}

export interface SupervisorOptions {
  readonly spawner: Spawner;
  readonly clock: Clock;
  /** Where prefixed child output goes. */
  readonly output: (line: string) => void;
  /** First restart delay; doubles per consecutive crash up to `restartBackoffMaxMs`. */
  readonly restartBackoffInitialMs: number;
  readonly restartBackoffMaxMs: number;
  /** Crashes allowed within `restartWindowMs` before the supervisor gives up. */
  readonly maxRestarts: number;
  readonly restartWindowMs: number;
  /** How long children get between SIGTERM and SIGKILL on stop. */
  readonly stopTimeoutMs: number;
  /** Called when a child crashed too often; the deployment cannot be kept up. */
  readonly onGiveUp: (name: string, code: number) => void;
}

interface ChildState {
  readonly spec: ChildSpec;
  proc: ChildProcessHandle | undefined;
  crashTimesMs: number[];
  backoffMs: number;
}

/**
 * Runs children and keeps them running: a child that exits while the supervisor is up is
 * restarted after an exponential backoff, up to a bounded number of crashes per window.
 * `stop()` sends SIGTERM to all, then SIGKILL to any still alive after the timeout.
 */
export class Supervisor {
  readonly #options: SupervisorOptions;
  readonly #children: ChildState[] = [];
  readonly #running = new Set<Promise<void>>();
  #stopping = false;
  readonly #stopController = new AbortController();

  constructor(options: SupervisorOptions) {
    this.#options = options;
  }

  start(spec: ChildSpec): void {
    const state: ChildState = {
      spec,
      proc: undefined,
      crashTimesMs: [],
      backoffMs: this.#options.restartBackoffInitialMs,
    };
    this.#children.push(state);
    const run = this.#keepRunning(state);
    this.#running.add(run);
    run.finally(() => this.#running.delete(run));
  }

  /** Pids of the children alive now, by name. */
  pids(): Record<string, number | undefined> {
    return Object.fromEntries(this.#children.map((c) => [c.spec.name, c.proc?.pid]));
  }

  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#stopController.abort();
    for (const c of this.#children) c.proc?.kill("SIGTERM");
    const killer = setTimeout(() => {
      for (const c of this.#children) {
        if (c.proc !== undefined) {
          log.warn("Child did not stop in time; killing it", { child: c.spec.name });
          c.proc.kill("SIGKILL");
        }
      }
    }, this.#options.stopTimeoutMs);
    await Promise.allSettled([...this.#running]);
    clearTimeout(killer);
  }

  async #keepRunning(state: ChildState): Promise<void> {
    const { spawner, clock, output } = this.#options;
    while (!this.#stopping) {
      const startedMs = clock.nowMs();
      const proc = spawner.spawn(state.spec.argv, { env: { ...state.spec.env } });
      state.proc = proc;
      const prefix = `[${state.spec.name}] `;
      const pumping = (async () => {
        for await (const line of proc.lines) output(prefix + line);
      })();
      const { code, signal } = await proc.status;
      await pumping.catch(() => {});
      state.proc = undefined;
      if (this.#stopping) return;
      const now = clock.nowMs();
      // A child that stayed up for a whole window starts its backoff afresh.
      if (now - startedMs > this.#options.restartWindowMs) {
        state.backoffMs = this.#options.restartBackoffInitialMs;
      }
      state.crashTimesMs = [...state.crashTimesMs, now].filter(
        (t) => now - t <= this.#options.restartWindowMs,
      );
      if (state.crashTimesMs.length > this.#options.maxRestarts) {
        log.error("Child keeps crashing; giving up", {
          child: state.spec.name,
          crashes: state.crashTimesMs.length,
          window_ms: this.#options.restartWindowMs,
        });
        this.#options.onGiveUp(state.spec.name, code);
        return;
      }
      log.warn("Child exited; restarting", {
        child: state.spec.name,
        code,
        signal: signal ?? undefined,
        restart_in_ms: state.backoffMs,
      });
      try {
        await clock.sleep(state.backoffMs, this.#stopController.signal);
      } catch {
        return;
      }
      state.backoffMs = Math.min(state.backoffMs * 2, this.#options.restartBackoffMaxMs);
    }
  }
}
