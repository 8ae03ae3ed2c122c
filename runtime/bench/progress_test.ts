import assert from "node:assert/strict";
import { formatProgress, ProgressReporter } from "./progress.ts";

Deno.test("formatProgress() shows done/total, rate, errors and time, with a bar on terminals", () => {
  const s = {
    label: "concurrency 4",
    done: 50,
    total: 100,
    errors: 1,
    elapsedS: 2,
    durationS: undefined,
  };
  assert.equal(
    formatProgress(s, false),
    "concurrency 4 50/100 requests, 25.0 req/s, 1 error, 2.0 s",
  );
  assert.equal(
    formatProgress(s, true),
    `concurrency 4 [${"#".repeat(12)}${
      " ".repeat(12)
    }] 50/100 requests, 25.0 req/s, 1 error, 2.0 s`,
  );
  assert.equal(
    formatProgress({ ...s, total: undefined, durationS: 8, errors: 0 }, true),
    `concurrency 4 [${"#".repeat(6)}${" ".repeat(18)}] 50 requests, 25.0 req/s, 0 errors, 2.0/8 s`,
  );
});

Deno.test("ProgressReporter redraws one line on a terminal and prints plain lines otherwise", async () => {
  for (const isTerminal of [true, false]) {
    const writes: string[] = [];
    const p = new ProgressReporter({ isTerminal, write: (t) => writes.push(t) }, {
      nowMs: () => 0,
    }, { label: "x", total: 2, plainIntervalMs: 10 });
    p.start();
    p.record(true);
    p.record(false);
    await new Promise((r) => setTimeout(r, 250));
    p.stop();
    assert.ok(writes.length >= 1);
    assert.deepEqual(p.state().done, 2);
    if (isTerminal) {
      // Every draw returns to the start of the line; the last write clears it.
      assert.ok(writes.every((w) => w.startsWith("\r\x1b[2K")));
      assert.ok(writes.every((w) => !w.includes("\n")));
      assert.equal(writes.at(-1), "\r\x1b[2K");
    } else {
      assert.ok(writes.every((w) => !w.includes("\r") && !w.includes("\x1b") && w.endsWith("\n")));
      assert.match(writes[0]!, /^x 2\/2 requests, .* 1 error/);
    }
  }
});
