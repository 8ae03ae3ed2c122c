import type { Clock } from "../util/mod.ts";

/** Where progress goes: a terminal gets one redrawn line, anything else plain lines. */
export interface ProgressSink {
  readonly isTerminal: boolean;
  write(text: string): void;
}

export interface ProgressState {
  readonly label: string;
  readonly done: number;
  /** Requests the run will send, when known. */
  readonly total: number | undefined;
  readonly errors: number;
  readonly elapsedS: number;
  /** Total wall time of the run, when it is a --duration run. */
  readonly durationS: number | undefined;
}

const BAR_WIDTH = 24;

/** One progress line: `concurrency 4 [#####   ] 120/200 requests, 45.2 req/s, 0 errors, 2.7 s`. */
export function formatProgress(s: ProgressState, withBar: boolean): string {
  const fraction = s.total !== undefined && s.total > 0
    ? Math.min(1, s.done / s.total)
    : s.durationS !== undefined && s.durationS > 0
    ? Math.min(1, s.elapsedS / s.durationS)
    : undefined;
  const bar = withBar && fraction !== undefined
    ? ` [${"#".repeat(Math.round(fraction * BAR_WIDTH)).padEnd(BAR_WIDTH)}]`
    : "";
  const rate = s.elapsedS > 0 ? s.done / s.elapsedS : 0;
  const of = s.total !== undefined ? `/${s.total}` : "";
  const time = s.durationS !== undefined
    ? `${s.elapsedS.toFixed(1)}/${s.durationS} s`
    : `${s.elapsedS.toFixed(1)} s`;
  return `${s.label}${bar} ${s.done}${of} requests, ${rate.toFixed(1)} req/s, ${s.errors} error${
    s.errors === 1 ? "" : "s"
  }, ${time}`;
}

/**
 * Live progress of one run. On a terminal it redraws a single line several times a second
 * and clears it at the end; otherwise it prints a plain line every `plainIntervalMs`. Never
 * both.
 */
export class ProgressReporter {
  readonly #sink: ProgressSink;
  readonly #clock: Pick<Clock, "nowMs">;
  readonly #label: string;
  readonly #total: number | undefined;
  readonly #durationS: number | undefined;
  readonly #intervalMs: number;
  #startMs = 0;
  #done = 0;
  #errors = 0;
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(
    sink: ProgressSink,
    clock: Pick<Clock, "nowMs">,
    options: {
      label: string;
      total?: number;
      durationS?: number;
      plainIntervalMs?: number;
    },
  ) {
    this.#sink = sink;
    this.#clock = clock;
    this.#label = options.label;
    this.#total = options.total;
    this.#durationS = options.durationS;
    this.#intervalMs = sink.isTerminal ? 200 : options.plainIntervalMs ?? 5000;
  }

  start(): void {
    this.#startMs = this.#clock.nowMs();
    this.#timer = setInterval(() => this.#draw(), this.#intervalMs);
  }

  /** Counts one finished request. */
  record(ok: boolean): void {
    this.#done++;
    if (!ok) this.#errors++;
  }

  state(): ProgressState {
    return {
      label: this.#label,
      done: this.#done,
      total: this.#total,
      errors: this.#errors,
      elapsedS: (this.#clock.nowMs() - this.#startMs) / 1000,
      durationS: this.#durationS,
    };
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    if (this.#sink.isTerminal) this.#sink.write("\r\x1b[2K");
  }

  #draw(): void {
    const line = formatProgress(this.state(), this.#sink.isTerminal);
    this.#sink.write(this.#sink.isTerminal ? `\r\x1b[2K${line}` : `${line}\n`);
  }
}
