import assert from "node:assert/strict";
import { ManualClock } from "../util/mod.ts";
import type { SessionSpec } from "../workload/mod.ts";
import { driveLoad, type SessionRunner, type TurnStatus } from "./load_driver.ts";
import { ListSource } from "./session_sources.ts";

function sessions(n: number, turns = 1, gapMs = 0, delayMs = 0): SessionSpec[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `s${i}`,
    arrivalMs: i * gapMs,
    turns: Array.from({ length: turns }, () => ({ newTokens: [1], maxTokens: 1, delayMs })),
  }));
}

/** A fake server on a manual clock: each turn takes `serviceMs`, answers `status(id, turn)`. */
function fakeRunner(
  clock: ManualClock,
  serviceMs: number,
  status: (id: string, turn: number) => TurnStatus = () => "ok",
) {
  const log: { id: string; turn: number; atMs: number }[] = [];
  let inflight = 0;
  let maxInflight = 0;
  const open = (s: SessionSpec): SessionRunner => ({
    async turn(index, signal) {
      log.push({ id: s.id, turn: index, atMs: clock.nowMs() });
      inflight++;
      maxInflight = Math.max(maxInflight, inflight);
      try {
        await clock.sleep(serviceMs, signal);
      } catch {
        return "cancelled";
      } finally {
        inflight--;
      }
      return status(s.id, index);
    },
  });
  return { open, log, maxInflight: () => maxInflight };
}

/** Advances the clock in small steps until `done` settles. */
async function runToEnd<T>(clock: ManualClock, done: Promise<T>): Promise<T> {
  let finished = false;
  done.finally(() => (finished = true));
  while (!finished) await clock.advance(1);
  return await done;
}

Deno.test("driveLoad() closed loop keeps `concurrency` in flight and starts exactly maxRequests", async () => {
  const clock = new ManualClock();
  const fake = fakeRunner(clock, 10);
  const result = await runToEnd(
    clock,
    driveLoad(new ListSource(sessions(100)), fake.open, {
      mode: { kind: "closed", concurrency: 4 },
      maxRequests: 22,
      durationMs: Infinity,
      maxInflightSessions: 1000,
      clock,
    }),
  );
  assert.equal(result.requestsStarted, 22);
  assert.equal(result.endedBy, "requests");
  assert.equal(fake.log.length, 22);
  assert.equal(fake.maxInflight(), 4);
  // Four at a time: the 5th request starts when the first four end, at 10 ms.
  assert.deepEqual(fake.log.slice(0, 5).map((e) => e.atMs), [0, 0, 0, 0, 10]);
});

Deno.test("driveLoad() sends a session's turns in order after their think time; a failure ends it", async () => {
  const clock = new ManualClock();
  const fake = fakeRunner(clock, 5, (id, turn) => id === "s1" && turn === 1 ? "error" : "ok");
  const result = await runToEnd(
    clock,
    driveLoad(new ListSource(sessions(2, 3, 0, 20)), fake.open, {
      mode: { kind: "closed", concurrency: 1 },
      maxRequests: Infinity,
      durationMs: Infinity,
      maxInflightSessions: 1000,
      clock,
    }),
  );
  assert.equal(result.endedBy, "sessions");
  assert.deepEqual(fake.log.map((e) => `${e.id}.${e.turn}@${e.atMs}`), [
    "s0.0@0",
    "s0.1@25",
    "s0.2@50",
    "s1.0@55",
    "s1.1@80",
  ]);
});

Deno.test("driveLoad() open loop starts each session at its arrival time, whatever is in flight", async () => {
  const clock = new ManualClock();
  const fake = fakeRunner(clock, 100);
  const result = await runToEnd(
    clock,
    driveLoad(new ListSource(sessions(5, 1, 7)), fake.open, {
      mode: { kind: "open" },
      maxRequests: Infinity,
      durationMs: Infinity,
      maxInflightSessions: 1000,
      clock,
    }),
  );
  assert.equal(result.requestsStarted, 5);
  assert.deepEqual(fake.log.map((e) => e.atMs), [0, 7, 14, 21, 28]);
  assert.equal(fake.maxInflight(), 5);
  assert.equal(result.lateArrivals, 0);
});

Deno.test("driveLoad() open loop holds arrivals beyond the in-flight bound and counts them late", async () => {
  const clock = new ManualClock();
  const fake = fakeRunner(clock, 100);
  const result = await runToEnd(
    clock,
    driveLoad(new ListSource(sessions(4, 1, 10)), fake.open, {
      mode: { kind: "open" },
      maxRequests: Infinity,
      durationMs: Infinity,
      maxInflightSessions: 2,
      clock,
    }),
  );
  assert.equal(fake.maxInflight(), 2);
  assert.equal(result.lateArrivals, 2);
  assert.deepEqual(fake.log.map((e) => e.atMs), [0, 10, 100, 110]);
});

Deno.test("driveLoad() cancels what is in flight when the duration ends", async () => {
  const clock = new ManualClock();
  const fake = fakeRunner(clock, 30);
  const result = await runToEnd(
    clock,
    driveLoad(new ListSource(sessions(1000)), fake.open, {
      mode: { kind: "closed", concurrency: 3 },
      maxRequests: Infinity,
      durationMs: 100,
      maxInflightSessions: 1000,
      clock,
    }),
  );
  assert.equal(result.endedBy, "duration");
  // Started at 0, 30, 60, 90 (three each); the last three were cut off at 100 ms.
  assert.equal(result.requestsStarted, 12);
  assert.equal(result.requestsCancelled, 3);
  assert.equal(clock.nowMs() <= 101, true);
});
