import assert from "node:assert/strict";
import { ActiveSequences } from "./active_sequences.ts";

Deno.test("ActiveSequences books prefill until the first token and blocks until the end", () => {
  const s = new ActiveSequences();
  s.add("a", { worker: 0, prefillTokens: 500, blockHashes: [1n, 2n, 3n] }, 0);
  s.add("b", { worker: 0, prefillTokens: 100, blockHashes: [1n, 2n, 9n] }, 0);
  assert.equal(s.activePrefillTokens(0), 600);
  assert.equal(s.activeBlocks(0), 4, "shared blocks count once");
  assert.equal(s.activeDepth(0, [1n, 2n, 5n]), 2);
  s.markPrefillCompleted("a");
  s.markPrefillCompleted("a");
  assert.equal(s.activePrefillTokens(0), 100);
  s.free("b");
  assert.equal(s.activePrefillTokens(0), 0);
  assert.equal(s.activeBlocks(0), 3);
  s.free("a");
  s.free("a");
  assert.equal(s.activeBlocks(0), 0);
  assert.equal(s.bookings, 0);
});

Deno.test("ActiveSequences force-frees bookings older than the maximum age", () => {
  const s = new ActiveSequences({ maxAgeMs: 1_000 });
  s.add("old", { worker: 1, prefillTokens: 10, blockHashes: [1n] }, 0);
  s.add("new", { worker: 1, prefillTokens: 20, blockHashes: [2n] }, 40_000);
  assert.equal(s.bookings, 1);
  assert.equal(s.activePrefillTokens(1), 20);
});

Deno.test("ActiveSequences.removeWorker() drops the worker's bookings", () => {
  const s = new ActiveSequences();
  s.add("x", { worker: 2, prefillTokens: 10, blockHashes: [1n] }, 0);
  s.add("y", { worker: 3, prefillTokens: 10, blockHashes: [1n] }, 0);
  s.removeWorker(2);
  assert.equal(s.bookings, 1);
  assert.equal(s.activeBlocks(2), 0);
  s.free("x");
  assert.equal(s.activePrefillTokens(3), 10);
});
