import assert from "node:assert/strict";
import { DynamoError } from "../../errors/mod.ts";
import { setLogLevel } from "../../observability/mod.ts";
import { AsyncQueue, deferred, systemClock } from "../../util/mod.ts";
import type { EngineInfo } from "../engine.ts";
import type { ExternalEngineAdapter, LaunchPorts, ProbeResult } from "./engine_adapter.ts";
import type { EngineProcess, ExitStatus, LaunchSpec, ProcessLauncher } from "./engine_process.ts";
import {
  DEFAULT_SUPERVISION_POLICY,
  ENGINE_STOPPING,
  EngineSupervisor,
  type SupervisionPolicy,
  type SupervisorEvent,
} from "./engine_supervisor.ts";

setLogLevel("off");

const INFO: EngineInfo = {
  kind: "vllm",
  blockSizeTokens: 16,
  totalKvBlocks: 100,
  maxNumSeqs: 8,
  maxNumBatchedTokens: 512,
  contextLengthTokens: 1024,
};

/** A process that does what the test says: becomes ready, prints, exits, ignores SIGTERM. */
class FakeProcess implements EngineProcess {
  readonly pid: number;
  readonly signals: string[] = [];
  readonly output = new AsyncQueue<string>(100);
  readonly #exit = deferred<ExitStatus>();
  ready = false;
  ignoresTerm = false;
  released = false;
  launchedAtMs = performance.now();

  constructor(pid: number) {
    this.pid = pid;
  }

  get exited(): Promise<ExitStatus> {
    return this.#exit.promise;
  }

  get lines(): AsyncIterable<string> {
    return this.output;
  }

  exit(status: ExitStatus): void {
    this.output.close();
    this.#exit.resolve(status);
  }

  signalGroup(signal: Deno.Signal): void {
    this.signals.push(signal);
    if (signal === "SIGKILL") this.exit({ code: 137, signal });
    if (signal === "SIGTERM" && !this.ignoresTerm) this.exit({ code: 143, signal });
  }

  release(): Promise<void> {
    this.released = true;
    return Promise.resolve();
  }
}

class FakeLauncher implements ProcessLauncher {
  readonly procs: FakeProcess[] = [];
  readonly specs: LaunchSpec[] = [];
  /** Called on each new process before the supervisor sees it. */
  onLaunch: (proc: FakeProcess, n: number) => void = (p) => (p.ready = true);

  launch(spec: LaunchSpec): EngineProcess {
    const proc = new FakeProcess(1000 + this.procs.length);
    this.procs.push(proc);
    this.specs.push(spec);
    this.onLaunch(proc, this.procs.length);
    return proc;
  }
}

function adapterFor(launcher: FakeLauncher): ExternalEngineAdapter {
  return {
    kind: "vllm",
    name: "fake",
    portNames: ["http"],
    command: (ports: LaunchPorts) => ({ argv: ["fake", String(ports["http"])], env: {} }),
    probe: (ports: LaunchPorts): Promise<ProbeResult> => {
      const proc = launcher.procs[ports["http"]! - 1]!;
      return Promise.resolve(
        proc.ready ? { ready: true, info: INFO } : { ready: false, why: "still loading" },
      );
    },
    generate: () => {
      throw new Error("unused");
    },
    scrapeLoad: () => Promise.reject(new Error("unused")),
    kvEventSource: () => undefined,
  };
}

function supervisor(launcher: FakeLauncher, policy: Partial<SupervisionPolicy> = {}) {
  let port = 0;
  return new EngineSupervisor({
    adapter: adapterFor(launcher),
    launcher,
    clock: systemClock,
    pickPorts: () => Promise.resolve({ http: ++port }),
    policy: {
      ...DEFAULT_SUPERVISION_POLICY,
      readyPollMs: 5,
      restartBackoffInitialMs: 20,
      restartBackoffMaxMs: 1_000,
      stopTimeoutMs: 30,
      ...policy,
    },
    output: () => {},
  });
}

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = performance.now() + 5_000;
  while (!check()) {
    if (performance.now() > deadline) assert.fail(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

Deno.test("EngineSupervisor reports down at once when the engine exits, restarts it, and reports ready", async () => {
  const launcher = new FakeLauncher();
  const sup = supervisor(launcher);
  const events: SupervisorEvent["kind"][] = [];
  sup.onEvent((e) => events.push(e.kind));
  try {
    const first = await sup.start();
    assert.equal(first.pid, 1000);
    assert.deepEqual(first.info, INFO);
    launcher.procs[0]!.exit({ code: 1, signal: null });
    await until(() => events.length >= 1, "down");
    assert.deepEqual(events, ["down"]);
    assert.ok(first.signal.aborted);
    assert.ok(first.signal.reason instanceof DynamoError);
    assert.equal(first.signal.reason.errorClass, "engine_error");
    assert.equal(sup.current as unknown, undefined);
    assert.ok(launcher.procs[0]!.released, "the watchdog is released");
    assert.deepEqual(launcher.procs[0]!.signals, ["SIGKILL"], "leftovers of its group are killed");
    await until(() => events.length >= 2, "ready again");
    assert.deepEqual(events, ["down", "ready"]);
    assert.equal((sup.current as { pid: number } | undefined)?.pid, 1001);
    assert.deepEqual(launcher.specs[1]!.argv, ["fake", "2"], "each launch gets fresh ports");
    const waitedMs = launcher.procs[1]!.launchedAtMs - launcher.procs[0]!.launchedAtMs;
    assert.ok(waitedMs >= 20, `restarted after ${waitedMs} ms`);
  } finally {
    await sup.stop();
  }
});

Deno.test("EngineSupervisor gives up after more than maxRestarts failures, with the engine's last line", async () => {
  const launcher = new FakeLauncher();
  launcher.onLaunch = (proc) => {
    proc.output.push("torch.OutOfMemoryError: CUDA out of memory");
    queueMicrotask(() => proc.exit({ code: 1, signal: null }));
  };
  const sup = supervisor(launcher, { maxRestarts: 2 });
  const err = await sup.start().catch((e) => e);
  assert.ok(err instanceof DynamoError);
  assert.equal(err.errorClass, "engine_error");
  assert.match(err.message, /failed 3 time\(s\)/);
  assert.match(err.message, /exited with code 1 before becoming ready/);
  assert.match(err.message, /CUDA out of memory/);
  assert.equal(launcher.procs.length, 3);
  // Backoff doubles: 20 ms, then 40 ms.
  const gaps = [1, 2].map((i) =>
    launcher.procs[i]!.launchedAtMs - launcher.procs[i - 1]!.launchedAtMs
  );
  assert.ok(gaps[0]! >= 20 && gaps[1]! >= 40, `gaps ${gaps}`);
  await sup.stop();
});

Deno.test("EngineSupervisor stops a launch that misses its readiness deadline: SIGTERM, then SIGKILL", async () => {
  const launcher = new FakeLauncher();
  launcher.onLaunch = (proc) => (proc.ignoresTerm = true);
  const sup = supervisor(launcher, { readyTimeoutMs: 50, maxRestarts: 0 });
  const err = await sup.start().catch((e) => e);
  assert.ok(err instanceof DynamoError);
  assert.match(err.message, /did not become ready within 0\.05 s \(still loading\)/);
  const proc = launcher.procs[0]!;
  assert.deepEqual(proc.signals.slice(0, 2), ["SIGTERM", "SIGKILL"]);
  assert.ok(proc.released);
  await sup.stop();
});

Deno.test("EngineSupervisor.stop() ends a ready launch with ENGINE_STOPPING and rejects a pending start", async () => {
  const launcher = new FakeLauncher();
  const sup = supervisor(launcher);
  const events: string[] = [];
  sup.onEvent((e) => events.push(e.kind));
  const launch = await sup.start();
  await sup.stop();
  assert.equal(launch.signal.reason, ENGINE_STOPPING);
  assert.deepEqual(launcher.procs[0]!.signals[0], "SIGTERM");
  assert.deepEqual(events, [], "a deliberate stop is not a failure");

  const slow = new FakeLauncher();
  slow.onLaunch = () => {};
  const pending = supervisor(slow);
  const started = pending.start().catch((e) => e);
  await until(() => slow.procs.length === 1, "the launch");
  await pending.stop();
  const err = await started;
  assert.ok(err instanceof DynamoError && err.reason === "engine_stopped");
  assert.ok(slow.procs[0]!.released);
});
