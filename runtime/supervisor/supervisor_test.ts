import assert from "node:assert/strict";
import { ManualClock } from "../util/mod.ts";
import type { ChildProcessHandle, Spawner } from "./spawner.ts";
import { Supervisor, type SupervisorOptions } from "./supervisor.ts";

/** A fake process: exits when the test says so, or on a signal it does not ignore. */
class FakeProc implements ChildProcessHandle {
  static nextPid = 100;
  readonly pid = FakeProc.nextPid++;
  readonly signals: Deno.Signal[] = [];
  readonly ignoreTerm: boolean;
  #resolve!: (s: { code: number; signal: string | null }) => void;
  readonly status = new Promise<{ code: number; signal: string | null }>((
    r,
  ) => (this.#resolve = r));
  readonly lines: AsyncIterable<string>;

  constructor(ignoreTerm: boolean) {
    this.ignoreTerm = ignoreTerm;
    const status = this.status;
    this.lines = (async function* () {
      yield "hello";
      await status;
    })();
  }

  exit(code: number): void {
    this.#resolve({ code, signal: null });
  }

  kill(signal: Deno.Signal): void {
    this.signals.push(signal);
    if (signal === "SIGKILL" || !this.ignoreTerm) this.#resolve({ code: 143, signal });
  }
}

function setup(overrides: Partial<SupervisorOptions> = {}, ignoreTerm = false) {
  const clock = new ManualClock();
  const procs: FakeProc[] = [];
  const lines: string[] = [];
  const gaveUp: string[] = [];
  const spawner: Spawner = {
    spawn() {
      const p = new FakeProc(ignoreTerm);
      procs.push(p);
      return p;
    },
  };
  const sup = new Supervisor({
    spawner,
    clock,
    output: (l) => lines.push(l),
    restartBackoffInitialMs: 100,
    restartBackoffMaxMs: 400,
    maxRestarts: 3,
    restartWindowMs: 60_000,
    stopTimeoutMs: 50,
    onGiveUp: (name) => gaveUp.push(name),
    ...overrides,
  });
  return { clock, procs, lines, gaveUp, sup };
}

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !cond(); i++) await new Promise((r) => setTimeout(r, 0));
  assert.ok(cond(), "condition not reached");
}

Deno.test("Supervisor.start() prefixes child output with the child's name", async () => {
  const { procs, lines, sup } = setup();
  sup.start({ name: "mocker-0", argv: ["x"] });
  await until(() => lines.length > 0);
  assert.deepEqual(lines, ["[mocker-0] hello"]);
  assert.equal(procs.length, 1);
  await sup.stop();
});

Deno.test("Supervisor restarts a crashed child after an exponential backoff", async () => {
  const { clock, procs, sup } = setup();
  sup.start({ name: "w", argv: ["x"] });
  await until(() => procs.length === 1);
  procs[0]!.exit(1);
  await until(() => clock.pendingSleepers === 1);
  await clock.advance(99);
  assert.equal(procs.length, 1, "restarted before the backoff elapsed");
  await clock.advance(1);
  await until(() => procs.length === 2);
  procs[1]!.exit(1);
  await until(() => clock.pendingSleepers === 1);
  await clock.advance(199);
  assert.equal(procs.length, 2, "second backoff should be doubled");
  await clock.advance(1);
  await until(() => procs.length === 3);
  await sup.stop();
});

Deno.test("Supervisor gives up after maxRestarts crashes within the window", async () => {
  const { clock, procs, gaveUp, sup } = setup({ maxRestarts: 2 });
  sup.start({ name: "w", argv: ["x"] });
  for (let i = 0; i < 3; i++) {
    await until(() => procs.length === i + 1);
    procs[i]!.exit(1);
    if (i < 2) {
      await until(() => clock.pendingSleepers === 1);
      await clock.advance(1_000);
    }
  }
  await until(() => gaveUp.length === 1);
  assert.deepEqual(gaveUp, ["w"]);
  assert.equal(procs.length, 3);
  await sup.stop();
});

Deno.test("Supervisor.stop() sends SIGTERM, then SIGKILL to a child that ignores it", async () => {
  const { procs, sup } = setup({}, true);
  sup.start({ name: "stubborn", argv: ["x"] });
  await until(() => procs.length === 1);
  await sup.stop();
  assert.deepEqual(procs[0]!.signals, ["SIGTERM", "SIGKILL"]);
});
