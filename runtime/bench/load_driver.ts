import type { LoadMode, SessionSpec } from "../workload/mod.ts";
import { type Clock, type Deferred, deferred } from "../util/mod.ts";

/** Sessions in the order they are started (open loop: by arrival time). */
export interface SessionSource {
  next(): SessionSpec | undefined;
}

/** How one request ended, as far as the driver cares. */
export type TurnStatus = "ok" | "error" | "cancelled";

/** Sends the turns of one session, in order; `turn` resolves once its answer is complete. */
export interface SessionRunner {
  turn(index: number, signal: AbortSignal): Promise<TurnStatus>;
}

export interface DriveOptions {
  /** Closed loop (a fixed number of sessions in flight) or open loop (arrival times). */
  readonly mode: LoadMode;
  /** Requests (turns) to start in all; Infinity for no limit. */
  readonly maxRequests: number;
  /** Wall time after which in-flight requests are cancelled; Infinity for no limit. */
  readonly durationMs: number;
  /** Open loop: most sessions in flight; later arrivals wait for a slot (counted as late). */
  readonly maxInflightSessions: number;
  readonly clock: Clock;
  /** Ends the run early, like the end of --duration (e.g. Ctrl-C). */
  readonly signal?: AbortSignal;
}

export interface DriveResult {
  readonly requestsStarted: number;
  /** Requests in flight when the run was cut short (their answers are not counted). */
  readonly requestsCancelled: number;
  /** Open loop: sessions that started after their arrival time because of the in-flight bound. */
  readonly lateArrivals: number;
  readonly endedBy: "requests" | "duration" | "sessions" | "signal";
}

/**
 * Drives sessions through a `SessionRunner`: closed loop with `concurrency` sessions in
 * flight (a session's turns go one after another, after each turn's think time; a failed
 * turn ends its session), or open loop, each session starting at its arrival time. Stops
 * starting requests once `maxRequests` have started, the source runs dry, or the duration
 * passes (which also cancels what is in flight).
 */
export async function driveLoad(
  source: SessionSource,
  openSession: (session: SessionSpec) => SessionRunner,
  options: DriveOptions,
): Promise<DriveResult> {
  const { clock } = options;
  const stop = new AbortController();
  let endedBy: DriveResult["endedBy"] = "sessions";
  const end = (why: DriveResult["endedBy"]) => {
    if (stop.signal.aborted) return;
    endedBy = why;
    stop.abort(new DOMException("Run ended", "AbortError"));
  };
  const onSignal = () => end("signal");
  options.signal?.addEventListener("abort", onSignal, { once: true });
  if (options.signal?.aborted) end("signal");
  const timerStop = new AbortController();
  if (Number.isFinite(options.durationMs)) {
    clock.sleep(options.durationMs, timerStop.signal).then(() => end("duration"), () => {});
  }
  const state = { started: 0, cancelled: 0 };
  const canStart = () => !stop.signal.aborted && state.started < options.maxRequests;

  async function runSession(session: SessionSpec): Promise<void> {
    const runner = openSession(session);
    for (let i = 0; i < session.turns.length; i++) {
      const delayMs = i === 0 ? 0 : session.turns[i]!.delayMs;
      if (delayMs > 0 && canStart()) {
        try {
          await clock.sleep(delayMs, stop.signal);
        } catch {
          return;
        }
      }
      if (!canStart()) return;
      state.started++;
      const status = await runner.turn(i, stop.signal);
      if (status === "cancelled") state.cancelled++;
      if (status !== "ok") return;
    }
  }

  let late = 0;
  if (options.mode.kind === "closed") {
    const loops = Array.from({ length: options.mode.concurrency }, async () => {
      while (canStart()) {
        const session = source.next();
        if (session === undefined) return;
        await runSession(session);
      }
    });
    await Promise.all(loops);
  } else {
    late = await openLoop(source, runSession, options, stop.signal, canStart);
  }
  if (!stop.signal.aborted && state.started >= options.maxRequests) endedBy = "requests";
  timerStop.abort();
  options.signal?.removeEventListener("abort", onSignal);
  return {
    requestsStarted: state.started,
    requestsCancelled: state.cancelled,
    lateArrivals: late,
    endedBy,
  };
}

async function openLoop(
  source: SessionSource,
  runSession: (s: SessionSpec) => Promise<void>,
  options: DriveOptions,
  stop: AbortSignal,
  canStart: () => boolean,
): Promise<number> {
  const { clock } = options;
  const t0 = clock.nowMs();
  const running = new Set<Promise<void>>();
  let slotFreed: Deferred<void> | undefined;
  let late = 0;
  const stopped = abortPromise(stop);
  while (canStart()) {
    const session = source.next();
    if (session === undefined) break;
    const waitMs = t0 + session.arrivalMs - clock.nowMs();
    if (waitMs > 0) {
      try {
        await clock.sleep(waitMs, stop);
      } catch {
        break;
      }
    }
    if (running.size >= options.maxInflightSessions) {
      late++;
      while (running.size >= options.maxInflightSessions && !stop.aborted) {
        slotFreed = deferred<void>();
        await Promise.race([slotFreed.promise, stopped]);
      }
      if (!canStart()) break;
    }
    const p = runSession(session).finally(() => {
      running.delete(p);
      slotFreed?.resolve();
    });
    running.add(p);
  }
  await Promise.all(running);
  return late;
}

function abortPromise(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
}
