import { MockerCore, type MockerOptionsInput, type MockerStep } from "../engines/mod.ts";
import type { WorkerLoad } from "../protocol/mod.ts";
import { SIM_VOCABULARY } from "./sim_vocabulary.ts";

/** Consecutive zero-length passes after which an engine is declared stuck (a core bug). */
const MAX_ZERO_PASSES = 100_000;

/**
 * One simulated worker: a MockerCore (the same core the live worker runs) plus what the
 * event loop tracks about it. Private to sim/.
 */
export class EngineSlot {
  readonly instanceId: number;
  readonly name: string;
  readonly core: MockerCore;
  /** A pass is running; its outputs become visible at its end. */
  busy = false;
  /** Queued to be considered for a new pass at the current instant. */
  kicked = false;
  passes = 0;
  peakKvBlocks = 0;
  #zeroPasses = 0;

  constructor(instanceId: number, name: string, options: MockerOptionsInput) {
    this.instanceId = instanceId;
    this.name = name;
    this.core = new MockerCore({ options, vocabulary: SIM_VOCABULARY, emitTokenIds: false });
  }

  /** Runs one pass starting at `nowMs` and records peak KV use. */
  step(nowMs: number): MockerStep {
    const step = this.core.step(nowMs);
    this.busy = true;
    this.passes++;
    const used = this.core.kvActiveBlocks;
    if (used > this.peakKvBlocks) this.peakKvBlocks = used;
    if (step.durationMs > 0) this.#zeroPasses = 0;
    else if (++this.#zeroPasses > MAX_ZERO_PASSES) {
      throw new Error(
        `Simulation stuck: engine ${this.name} ran ${MAX_ZERO_PASSES} passes without time passing`,
      );
    }
    return step;
  }

  /** The load the worker would publish now (the router's busy check reads it). */
  load(): WorkerLoad {
    return { worker_id: this.instanceId, dp_rank: 0, ...this.core.load() };
  }
}
