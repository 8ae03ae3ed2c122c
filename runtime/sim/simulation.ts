import { DynamoError } from "../errors/mod.ts";
import type { MockerStep } from "../engines/mod.ts";
import type { Clock } from "../util/mod.ts";
import { turnPrompt } from "../workload/mod.ts";
import { buildCluster, type Cluster } from "./_cluster.ts";
import type { EngineSlot } from "./_engine_slot.ts";
import {
  engineRequestOf,
  finishedSample,
  type InFlight,
  newInFlight,
  recordOutput,
  refusedSample,
  type SessionRun,
} from "./_in_flight.ts";
import { EventQueue } from "./event_queue.ts";
import type { SimConfig, SimResult, SimSample, SimWorkerStats } from "./sim_config.ts";
import type { SimWorkload } from "./sim_workload.ts";

type SimEvent =
  | { readonly timeMs: number; readonly kind: "start"; readonly session: number }
  | { readonly timeMs: number; readonly kind: "turn"; readonly run: SessionRun }
  | {
    readonly timeMs: number;
    readonly kind: "pass_end";
    readonly slot: EngineSlot;
    readonly step: MockerStep;
  };

/** Settled admissions from the router's queue, waiting to be dispatched. */
type Admission =
  | { readonly req: InFlight; readonly instanceId: number }
  | { readonly req: InFlight; readonly error: unknown };

/**
 * Runs a workload against a simulated cluster in virtual time and returns every request's
 * record. Deterministic: the same workload, config and seed give the same result.
 *
 * It is a discrete-event simulation over the live roles' cores: the router's selectors
 * (called as the frontend pipeline calls them: select, onRouted at dispatch, onFirstToken
 * at the first token, onFinished at the end) and one MockerCore per worker, stepped one
 * pass at a time whenever it is idle and has work. A pass's tokens and KV events become
 * visible at its end; the KV events go straight into the router's index (unless the router
 * runs without events).
 */
export function simulate(workload: SimWorkload, config: SimConfig): Promise<SimResult> {
  return new Simulation(workload, config).run();
}

class Simulation {
  readonly #workload: SimWorkload;
  readonly #config: SimConfig;
  readonly #queue = new EventQueue<SimEvent>();
  readonly #cluster: Cluster;
  readonly #inflight = new Map<string, InFlight>();
  readonly #samples: SimSample[] = [];
  readonly #kicked: EngineSlot[] = [];
  /** Session indices in the order they start. */
  readonly #order: number[];
  #admissions: Admission[] = [];
  #nowMs = 0;
  #parked = 0;
  #parkedTotal = 0;
  #nextSession = 0;
  #sessionsInFlight = 0;
  #maxSessionsInFlight = 0;
  #kvEventsApplied = 0;
  /** The router released load (and may have admitted parked requests) since the last settle. */
  #released = false;

  constructor(workload: SimWorkload, config: SimConfig) {
    this.#workload = workload;
    this.#config = config;
    const clock: Clock = {
      nowMs: () => this.#nowMs,
      sleep: () => Promise.reject(new Error("Cannot sleep in virtual time")),
    };
    this.#cluster = buildCluster(config, clock);
    // Open loop sends sessions by arrival time (stable for equal times); closed loop in order.
    this.#order = workload.sessions.map((_, i) => i);
    if (workload.mode.kind === "open") {
      const s = workload.sessions;
      this.#order.sort((a, b) => s[a]!.arrivalMs - s[b]!.arrivalMs || a - b);
    }
  }

  async run(): Promise<SimResult> {
    this.#startSessions();
    // The hot loop is synchronous; it stops only when the router's queue may have admitted
    // parked requests, whose promises need a turn of the microtask queue to settle.
    while (this.#runUntilSettle()) {
      const admitted = await this.#settleAdmissions();
      const next = this.#queue.peek();
      if (next === undefined && !admitted) break;
      if (next === undefined || next.timeMs > this.#nowMs) this.#stepEngines();
    }
    if (this.#inflight.size > 0 || this.#parked > 0) {
      throw new DynamoError(
        "internal",
        "sim_stuck",
        `Simulation stuck at ${this.#nowMs} ms: ${this.#inflight.size} requests in flight, ${this.#parked} parked, nothing scheduled`,
      );
    }
    return this.#result();
  }

  /**
   * Processes instants in time order: every event due, then a pass on each idle engine
   * with work. Returns false when nothing is left, true when it stopped (before stepping
   * the engines) so parked requests can be admitted at the current instant.
   */
  #runUntilSettle(): boolean {
    const queue = this.#queue;
    for (;;) {
      const next = queue.peek();
      if (next === undefined) return this.#parked > 0;
      this.#nowMs = next.timeMs;
      while (queue.peek() !== undefined && queue.peek()!.timeMs <= this.#nowMs) {
        this.#handle(queue.pop()!);
      }
      if (this.#parked > 0 && this.#released) return true;
      // Events for this same instant (a turn with no think time) go before the engines step,
      // so requests arriving together share a pass.
      if (queue.peek() !== undefined && queue.peek()!.timeMs <= this.#nowMs) continue;
      this.#stepEngines();
    }
  }

  #handle(event: SimEvent): void {
    switch (event.kind) {
      case "start":
        this.#startSession(event.session);
        break;
      case "turn":
        this.#dispatch(event.run);
        break;
      case "pass_end":
        this.#passEnd(event.slot, event.step);
        break;
    }
  }

  #startSessions(): void {
    const sessions = this.#workload.sessions;
    const mode = this.#workload.mode;
    if (mode.kind === "closed") {
      const n = Math.min(sessions.length, Math.max(1, mode.concurrency));
      for (let i = 0; i < n; i++) this.#scheduleNextSession(0);
    } else if (sessions.length > 0) {
      this.#scheduleNextSession(sessions[this.#order[0]!]!.arrivalMs);
    }
  }

  /** Queues the next session in order; open loop keeps exactly one arrival pending. */
  #scheduleNextSession(atMs: number): void {
    if (this.#nextSession >= this.#order.length) return;
    const session = this.#order[this.#nextSession++]!;
    this.#queue.push({ timeMs: Math.max(atMs, this.#nowMs), kind: "start", session });
  }

  #startSession(index: number): void {
    if (this.#workload.mode.kind === "open" && this.#nextSession < this.#order.length) {
      const next = this.#workload.sessions[this.#order[this.#nextSession]!]!;
      this.#scheduleNextSession(next.arrivalMs);
    }
    const session = this.#workload.sessions[index]!;
    this.#sessionsInFlight++;
    if (this.#sessionsInFlight > this.#maxSessionsInFlight) {
      this.#maxSessionsInFlight = this.#sessionsInFlight;
    }
    if (session.turnCount === 0) {
      this.#endSession();
      return;
    }
    this.#dispatch({ session, turn: 0, history: null });
  }

  #endSession(): void {
    this.#sessionsInFlight--;
    if (this.#workload.mode.kind === "closed") this.#scheduleNextSession(this.#nowMs);
  }

  /** Builds the turn's prompt and routes it, as the frontend would. */
  #dispatch(run: SessionRun): void {
    const turn = run.session.turn(run.turn);
    const prompt = run.history === null ? turn.newTokens : turnPrompt(run.history, turn);
    const req = newInFlight(run, prompt, turn.maxTokens, this.#nowMs);
    let decision;
    try {
      decision = this.#cluster.selector.select(req.route, this.#cluster.candidates);
    } catch (err) {
      this.#refuse(req, err);
      return;
    }
    if (decision instanceof Promise) {
      // Parked by the KV router's admission queue: it is admitted when load is released,
      // from inside onFirstToken/onFinished; `#settleAdmissions` picks it up at that instant.
      this.#parked++;
      this.#parkedTotal++;
      decision.then(
        (d) => this.#admissions.push({ req, instanceId: d.instanceId }),
        (error) => this.#admissions.push({ req, error }),
      );
      return;
    }
    this.#send(req, decision.instanceId);
  }

  #send(req: InFlight, instanceId: number): void {
    const slot = this.#cluster.slots[instanceId - 1]!;
    const selector = this.#cluster.selector;
    selector.onRouted?.(req.route, instanceId);
    try {
      const request = engineRequestOf(req, this.#config.seed, this.#config.ignoreEos);
      slot.core.addRequest(request, this.#nowMs);
    } catch (err) {
      selector.onFinished?.(req.id);
      this.#released = true;
      this.#refuse(req, err);
      return;
    }
    req.slot = slot;
    this.#inflight.set(req.id, req);
    this.#kick(slot);
  }

  /**
   * Lets the router's queue settle: its admissions resolve promises, whose callbacks run
   * as microtasks, so yield once and dispatch what they admitted at the current instant.
   * Dispatching can release load again (a refused request), so repeat until quiet.
   * Returns whether anything was admitted.
   */
  async #settleAdmissions(): Promise<boolean> {
    let any = false;
    for (;;) {
      this.#released = false;
      await Promise.resolve();
      if (this.#admissions.length === 0) return any;
      any = true;
      const batch = this.#admissions;
      this.#admissions = [];
      for (const a of batch) {
        this.#parked--;
        if ("error" in a) this.#refuse(a.req, a.error);
        else this.#send(a.req, a.instanceId);
      }
    }
  }

  #kick(slot: EngineSlot): void {
    if (slot.kicked) return;
    slot.kicked = true;
    this.#kicked.push(slot);
  }

  /** Starts a pass on every idle engine that has work. */
  #stepEngines(): void {
    const kicked = this.#kicked;
    for (let i = 0; i < kicked.length; i++) {
      const slot = kicked[i]!;
      slot.kicked = false;
      if (slot.busy || !slot.core.hasWork()) continue;
      const step = slot.step(this.#nowMs);
      this.#queue.push({ timeMs: this.#nowMs + step.durationMs, kind: "pass_end", slot, step });
    }
    kicked.length = 0;
  }

  #passEnd(slot: EngineSlot, step: MockerStep): void {
    slot.busy = false;
    const state = this.#cluster.kvState;
    if (state !== undefined && state.config.useKvEvents) {
      for (const event of step.kvEvents) {
        state.applyEvent({ worker_id: slot.instanceId, event });
        this.#kvEventsApplied++;
      }
    }
    const selector = this.#cluster.selector;
    for (const out of step.outputs) {
      const req = this.#inflight.get(out.requestId);
      if (req === undefined) continue;
      if (recordOutput(req, out, this.#nowMs)) {
        selector.onFirstToken?.(req.id);
        this.#released = true;
      }
      if (out.finishReason === undefined) continue;
      this.#inflight.delete(req.id);
      selector.onFinished?.(req.id);
      this.#released = true;
      const sample = finishedSample(req, out.finishReason, this.#nowMs);
      this.#samples.push(sample);
      this.#nextTurn(req, sample.ok);
    }
    this.#kick(slot);
  }

  /** A turn ended: send the session's next turn after its think time, or end the session. */
  #nextTurn(req: InFlight, ok: boolean): void {
    const run = req.run;
    if (!ok || run.turn + 1 >= run.session.turnCount) {
      this.#endSession();
      return;
    }
    const history = req.route.tokenIds as number[];
    run.history = req.output === null ? history : history.concat(req.output);
    run.turn++;
    const delayMs = run.session.turn(run.turn).delayMs;
    this.#queue.push({ timeMs: this.#nowMs + Math.max(0, delayMs), kind: "turn", run });
  }

  /** Records a request the router or the engine refused; its session ends. */
  #refuse(req: InFlight, err: unknown): void {
    this.#samples.push(refusedSample(req, err, this.#nowMs));
    this.#endSession();
  }

  #result(): SimResult {
    const workers: SimWorkerStats[] = this.#cluster.slots.map((s) => ({
      worker: s.name,
      instanceId: s.instanceId,
      peakKvBlocks: s.peakKvBlocks,
      kvTotalBlocks: s.core.options.numGpuBlocks,
      passes: s.passes,
      preemptions: s.core.preemptionsTotal,
    }));
    return {
      samples: this.#samples,
      workers,
      blockSizeTokens: this.#cluster.options.blockSizeTokens,
      endMs: this.#nowMs,
      passes: workers.reduce((a, w) => a + w.passes, 0),
      kvEventsApplied: this.#kvEventsApplied,
      routerParked: this.#parkedTotal,
      maxSessionsInFlight: this.#maxSessionsInFlight,
    };
  }
}
