import assert from "node:assert/strict";
import { decodeTimeMs, passDurationMs, polynomialPerfModel, prefillTimeMs } from "./timing.ts";

const close = (actual: number, expected: number): void =>
  assert.ok(Math.abs(actual - expected) < 1e-9, `${actual} != ${expected}`);

Deno.test("prefillTimeMs() follows the polynomial at known points", () => {
  close(prefillTimeMs(1, 100, 0), 18.023973989);
  // x = 4 * (1000 - 200) = 3200 new tokens.
  close(prefillTimeMs(4, 1000, 200), 69.399456736);
  close(prefillTimeMs(1, 8192, 0), 169.1369184042496);
});

Deno.test("prefillTimeMs() is 0 when no request computed prompt tokens", () => {
  assert.equal(prefillTimeMs(0, 0, 0), 0);
  assert.equal(prefillTimeMs(0, 500, 100), 0);
});

Deno.test("decodeTimeMs() follows the polynomial in KV utilisation", () => {
  close(decodeTimeMs(0, 100), 5.74);
  close(decodeTimeMs(50, 100), 26.31);
  close(decodeTimeMs(100, 100), 34.01);
});

Deno.test("decodeTimeMs() is floored at 1 ms", () => {
  assert.equal(decodeTimeMs(300, 100), 1);
});

Deno.test("passDurationMs() divides prefill by speedup and decode by both speedups", () => {
  close(passDurationMs(100, 20, { speedupRatio: 2, decodeSpeedupRatio: 4 }), 52.5);
  close(passDurationMs(100, 20, { speedupRatio: 1, decodeSpeedupRatio: 1 }), 120);
});

Deno.test("passDurationMs() rejects speedups that are not > 0", () => {
  assert.throws(() => passDurationMs(1, 1, { speedupRatio: 0, decodeSpeedupRatio: 1 }), RangeError);
  assert.throws(
    () => passDurationMs(1, 1, { speedupRatio: 1, decodeSpeedupRatio: -1 }),
    RangeError,
  );
});

Deno.test("polynomialPerfModel uses the same formulas", () => {
  assert.equal(polynomialPerfModel.prefillMs(1, 100, 0), prefillTimeMs(1, 100, 0));
  assert.equal(polynomialPerfModel.decodeMs(7, 10), decodeTimeMs(7, 10));
});
