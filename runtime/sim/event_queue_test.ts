import assert from "node:assert/strict";
import { SeededRng } from "../util/mod.ts";
import { EventQueue } from "./event_queue.ts";

Deno.test("EventQueue.pop() returns events by time, and same-time events in push order", () => {
  const rng = new SeededRng(7);
  const queue = new EventQueue<{ timeMs: number; id: number }>();
  const pushed: { timeMs: number; id: number }[] = [];
  const popped: { timeMs: number; id: number }[] = [];
  let id = 0;
  // Interleave pushes and pops, with many equal times, against a stable sort.
  for (let round = 0; round < 2000; round++) {
    if (rng.nextFloat() < 0.6 || queue.size === 0) {
      const event = { timeMs: rng.nextInt(50), id: id++ };
      pushed.push(event);
      queue.push(event);
    } else {
      const min = Math.min(...pushed.filter((e) => !popped.includes(e)).map((e) => e.timeMs));
      const expected = pushed.find((e) => !popped.includes(e) && e.timeMs === min)!;
      const got = queue.pop()!;
      assert.equal(got, expected);
      popped.push(got);
    }
  }
  const rest: { timeMs: number; id: number }[] = [];
  for (let e = queue.pop(); e !== undefined; e = queue.pop()) rest.push(e);
  const remaining = pushed.filter((e) => !popped.includes(e));
  assert.deepEqual(rest, [...remaining].sort((a, b) => a.timeMs - b.timeMs || a.id - b.id));
  assert.equal(queue.peek(), undefined);
});

Deno.test("EventQueue.push() refuses events past its limit and non-finite times", () => {
  const queue = new EventQueue<{ timeMs: number }>({ maxPendingEvents: 2 });
  queue.push({ timeMs: 1 });
  queue.push({ timeMs: 2 });
  assert.throws(() => queue.push({ timeMs: 3 }), /2 are pending \(limit 2\)/);
  assert.throws(() => queue.push({ timeMs: NaN }), RangeError);
  assert.equal(queue.size, 2);
});
