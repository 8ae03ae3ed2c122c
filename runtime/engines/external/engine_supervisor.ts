import { DynamoError } from "../../errors/mod.ts";
import { Logger } from "../../observability/mod.ts";
import { type Clock, type Deferred, deferred } from "../../util/mod.ts";
import type { EngineInfo } from "../engine.ts";
import type { ExternalEngineAdapter, LaunchPorts } from "./engine_adapter.ts";
import {
  type EngineProcess,
  type ExitStatus,
  type ProcessLauncher,
  stopEngineProcess,
} from "./engine_process.ts";
import { LineTail } from "./line_tail.ts";

/** The limits of keeping one engine process up. Every field has a bound. */
export interface SupervisionPolicy {
  /** How long a launch may take to become ready before it counts as failed. */
  readonly readyTimeoutMs: number;
  /** Pause between readiness checks. */
  readonly readyPollMs: number;
  /** Failures tolerated within `restartWindowMs`; one more and the supervisor gives up. */
  readonly maxRestarts: number;
  readonly restartWindowMs: number;
  /** First pause before a restart; doubles per failure up to `restartBackoffMaxMs`. */
  readonly restartBackoffInitialMs: number;
  readonly restartBackoffMaxMs: number;
  /** How long the engine gets between SIGTERM and SIGKILL when stopped. */
  readonly stopTimeoutMs: number;
  /** Output lines kept to explain a failure. */
  readonly tailLines: number;
}

export const DEFAULT_SUPERVISION_POLICY: SupervisionPolicy = Object.freeze({
  readyTimeoutMs: 600_000,
  readyPollMs: 250,
  maxRestarts: 3,
  restartWindowMs: 600_000,
  restartBackoffInitialMs: 1_000,
  restartBackoffMaxMs: 30_000,
  stopTimeoutMs: 30_000,
  tailLines: 50,
});

/** A launch that became ready; `signal` aborts when it goes down or is stopped. */
export interface ReadyLaunch {
  readonly attempt: number;
  readonly pid: number;
  readonly ports: LaunchPorts;
  readonly info: EngineInfo;
  /** Aborted with `ENGINE_STOPPING` on stop, with an `engine_error` DynamoError on a crash. */
  readonly signal: AbortSignal;
}

/** What the supervisor reports after the first ready. */
export type SupervisorEvent =
  | { readonly kind: "ready"; readonly launch: ReadyLaunch }
  | { readonly kind: "down"; readonly reason: string }
  | { readonly kind: "failed"; readonly error: DynamoError };

/** The abort reason of a launch that was stopped on purpose (its requests are cancelled). */
export const ENGINE_STOPPING: unique symbol = Symbol("engine stopping");

export interface EngineSupervisorDeps {
  readonly adapter: ExternalEngineAdapter;
  readonly launcher: ProcessLauncher;
  readonly clock: Clock;
  readonly pickPorts: (names: readonly string[]) => Promise<Record<string, number>>;
  readonly policy: SupervisionPolicy;
  /** Where the engine's output lines go (the worker's log). */
  readonly output: (line: string, pid: number) => void;
  readonly logger?: Logger;
}

type LaunchOutcome =
  | { readonly kind: "stopped" }
  | { readonly kind: "failed"; readonly why: string; readonly upMs: number };

/**
 * Keeps one external engine process running: launches it (in its own process group, with
 * an orphan watchdog), waits a bounded time until its adapter says it is ready, reports
 * `ready`; when it exits, reports `down` at once, restarts it after an exponential backoff
 * and reports `ready` again; after more than `maxRestarts` failures within the window (a
 * crash, an exit before ready, or a readiness deadline passed) it reports `failed`, with
 * the engine's last output lines. `stop()` stops the engine: SIGTERM to its group, SIGKILL
 * after `stopTimeoutMs`.
 */
export class EngineSupervisor {
  readonly #deps: EngineSupervisorDeps;
  readonly #log: Logger;
  readonly #listeners = new Set<(event: SupervisorEvent) => void>();
  readonly #stop = new AbortController();
  readonly #firstReady: Deferred<ReadyLaunch> = deferred();
  #started = false;
  #loop: Promise<void> | undefined;
  #current: ReadyLaunch | undefined;
  #everReady = false;
  #tail: LineTail;

  constructor(deps: EngineSupervisorDeps) {
    this.#deps = deps;
    this.#log = deps.logger ?? new Logger(`engine.${deps.adapter.name}`);
    this.#tail = new LineTail({ maxLines: deps.policy.tailLines });
    this.#firstReady.promise.catch(() => {});
  }

  /** The launch serving now; undefined while the engine is starting, down or stopped. */
  get current(): ReadyLaunch | undefined {
    return this.#current;
  }

  /** The last output lines of the latest launch. */
  get tail(): LineTail {
    return this.#tail;
  }

  /** Starts the loop; resolves at the first ready, rejects if the supervisor gives up first. */
  start(): Promise<ReadyLaunch> {
    if (!this.#started) {
      this.#started = true;
      this.#loop = this.#run();
    }
    return this.#firstReady.promise;
  }

  onEvent(listener: (event: SupervisorEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Stops the engine and the loop. Idempotent. */
  async stop(): Promise<void> {
    this.#stop.abort(ENGINE_STOPPING);
    this.#firstReady.reject(
      new DynamoError("unavailable", "engine_stopped", `Engine "${this.#name}" was stopped`),
    );
    await this.#loop;
  }

  get #name(): string {
    return this.#deps.adapter.name;
  }

  #emit(event: SupervisorEvent): void {
    for (const l of this.#listeners) {
      try {
        l(event);
      } catch (err) {
        this.#log.error("Engine event listener failed", { error: err });
      }
    }
  }

  async #run(): Promise<void> {
    const { policy, clock } = this.#deps;
    let backoffMs = policy.restartBackoffInitialMs;
    let failuresMs: number[] = [];
    for (let attempt = 1; !this.#stop.signal.aborted; attempt++) {
      const outcome = await this.#launchOnce(attempt);
      if (outcome.kind === "stopped") return;
      const now = clock.nowMs();
      // An engine that served for a whole window starts its backoff afresh.
      if (outcome.upMs >= policy.restartWindowMs) backoffMs = policy.restartBackoffInitialMs;
      failuresMs = [...failuresMs.filter((t) => now - t <= policy.restartWindowMs), now];
      if (failuresMs.length > policy.maxRestarts) {
        this.#giveUp(outcome.why, failuresMs.length);
        return;
      }
      this.#log.warn("Engine failed; restarting it", {
        why: outcome.why,
        failures: failuresMs.length,
        max_restarts: policy.maxRestarts,
        restart_in_ms: backoffMs,
      });
      try {
        await clock.sleep(backoffMs, this.#stop.signal);
      } catch {
        return;
      }
      backoffMs = Math.min(backoffMs * 2, policy.restartBackoffMaxMs);
    }
  }

  #giveUp(why: string, failures: number): void {
    const { policy } = this.#deps;
    const lines = this.#tail.lines();
    const last = lines.length === 0 ? "it printed nothing" : `its last line: ${lines.at(-1)}`;
    const error = new DynamoError(
      "engine_error",
      "engine_failed",
      `Engine "${this.#name}" failed ${failures} time(s) within ${
        Math.round(policy.restartWindowMs / 1000)
      } s; giving up. Last failure: ${why}; ${last}`,
    );
    this.#log.error("Engine keeps failing; giving up", {
      failures,
      max_restarts: policy.maxRestarts,
      why,
    });
    for (const line of lines) this.#log.error(`  | ${line}`);
    this.#firstReady.reject(error);
    if (this.#everReady) this.#emit({ kind: "failed", error });
  }

  async #launchOnce(attempt: number): Promise<LaunchOutcome> {
    const { adapter, launcher, policy, clock } = this.#deps;
    let ports: Record<string, number>;
    let proc: EngineProcess;
    try {
      ports = await this.#deps.pickPorts(adapter.portNames);
      const spec = adapter.command(ports);
      proc = launcher.launch(spec);
      this.#log.info("Engine started", { pid: proc.pid, attempt, command: spec.argv.join(" ") });
    } catch (err) {
      const why = `cannot launch it: ${err instanceof Error ? err.message : String(err)}`;
      return { kind: "failed", why, upMs: 0 };
    }
    this.#tail = new LineTail({ maxLines: policy.tailLines });
    const tail = this.#tail;
    const pumping = (async () => {
      for await (const line of proc.lines) {
        tail.push(line);
        this.#deps.output(line, proc.pid);
      }
    })().catch(() => {});
    const exited = proc.exited.then((status) => ({ kind: "exited" as const, status }));
    const ready = await this.#waitReady(ports, exited);
    if (ready.kind !== "ready") {
      if (ready.kind === "exited") {
        proc.signalGroup("SIGKILL"); // whatever it started and left behind
        await proc.release();
      } else await stopEngineProcess(proc, policy.stopTimeoutMs, clock);
      await pumping;
      if (ready.kind === "stopped") return { kind: "stopped" };
      const why = ready.kind === "exited"
        ? `it ${describeExit(ready.status)} before becoming ready`
        : `it did not become ready within ${policy.readyTimeoutMs / 1000} s (${ready.why})`;
      this.#log.warn("Engine did not become ready", { pid: proc.pid, why });
      return { kind: "failed", why, upMs: 0 };
    }
    const abort = new AbortController();
    const launch: ReadyLaunch = {
      attempt,
      pid: proc.pid,
      ports,
      info: ready.info,
      signal: abort.signal,
    };
    const readyAtMs = clock.nowMs();
    this.#current = launch;
    this.#log.info("Engine ready", { pid: proc.pid, attempt, ...ready.info });
    if (this.#everReady) this.#emit({ kind: "ready", launch });
    this.#everReady = true;
    this.#firstReady.resolve(launch);
    const stopped = new Promise<{ kind: "stopped" }>((resolve) => {
      if (this.#stop.signal.aborted) resolve({ kind: "stopped" });
      this.#stop.signal.addEventListener("abort", () => resolve({ kind: "stopped" }), {
        once: true,
      });
    });
    const end = await Promise.race([exited, stopped]);
    this.#current = undefined;
    if (end.kind === "stopped") {
      abort.abort(ENGINE_STOPPING);
      await stopEngineProcess(proc, policy.stopTimeoutMs, clock);
      await pumping;
      return { kind: "stopped" };
    }
    const why = `it ${describeExit(end.status)} after serving for ${
      Math.round((clock.nowMs() - readyAtMs) / 100) / 10
    } s`;
    abort.abort(
      new DynamoError("engine_error", "engine_exited", `Engine "${this.#name}" exited mid-request`),
    );
    proc.signalGroup("SIGKILL");
    this.#log.warn("Engine exited", { pid: proc.pid, why });
    this.#emit({ kind: "down", reason: why });
    await proc.release();
    await pumping;
    return { kind: "failed", why, upMs: clock.nowMs() - readyAtMs };
  }

  /** Polls the adapter's probe until ready, the process exits, the deadline passes, or stop. */
  async #waitReady(
    ports: LaunchPorts,
    exited: Promise<{ kind: "exited"; status: ExitStatus }>,
  ): Promise<
    | { kind: "ready"; info: EngineInfo }
    | { kind: "exited"; status: ExitStatus }
    | { kind: "timeout"; why: string }
    | { kind: "stopped" }
  > {
    const { adapter, policy, clock } = this.#deps;
    const deadlineMs = clock.nowMs() + policy.readyTimeoutMs;
    let why = "not checked yet";
    let gone: { kind: "exited"; status: ExitStatus } | undefined;
    exited.then((e) => (gone = e));
    const stopped = stopSignalled(this.#stop.signal);
    while (!this.#stop.signal.aborted) {
      await Promise.resolve(); // let a settled exit be seen
      if (gone !== undefined) return gone;
      const remainingMs = deadlineMs - clock.nowMs();
      if (remainingMs <= 0) return { kind: "timeout", why };
      const probeSignal = AbortSignal.any([
        this.#stop.signal,
        AbortSignal.timeout(Math.min(remainingMs, 5_000)),
      ]);
      const result = await Promise.race([adapter.probe(ports, probeSignal), exited]);
      if ("kind" in result) return result;
      if (result.ready) return { kind: "ready", info: result.info };
      why = result.why;
      const pause = new AbortController();
      const slept = clock.sleep(Math.min(policy.readyPollMs, remainingMs), pause.signal)
        .then(() => undefined, () => undefined);
      const woke = await Promise.race([slept, exited, stopped]);
      pause.abort();
      if (woke !== undefined && woke.kind === "exited") return woke;
    }
    return { kind: "stopped" };
  }
}

function stopSignalled(signal: AbortSignal): Promise<undefined> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve(undefined);
    signal.addEventListener("abort", () => resolve(undefined), { once: true });
  });
}

/** "exited with code 1", "was killed by SIGKILL". */
export function describeExit(status: ExitStatus): string {
  return status.signal !== null
    ? `was killed by ${status.signal}`
    : `exited with code ${status.code}`;
}
