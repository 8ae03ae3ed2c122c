import assert from "node:assert/strict";
import { parseDistribution, type SessionSpec, syntheticWorkload } from "../workload/mod.ts";
import { ListSource, SyntheticSource } from "./session_sources.ts";

const spec = {
  isl: parseDistribution("uniform:5:40", "--isl"),
  osl: parseDistribution("4", "--osl"),
  sharedPrefixRatio: 0.5,
  prefixGroups: 2,
  turns: 2,
  turnIsl: parseDistribution("3", "--turn-isl"),
  interTurnDelayMs: 0,
  arrival: { kind: "poisson" as const, ratePerS: 10 },
  vocabulary: Array.from({ length: 50 }, (_, i) => 100 + i),
  seed: 3,
};

Deno.test("SyntheticSource continues exactly as one larger synthetic workload would", () => {
  const source = new SyntheticSource(spec, { initial: 3, description: "d" });
  const got: SessionSpec[] = [];
  for (let i = 0; i < 20; i++) got.push(source.next()!);
  const expected = syntheticWorkload({ ...spec, sessions: 20 }, "d").sessions;
  assert.deepEqual(got, expected);
  // Arrival times keep increasing across regenerations.
  for (let i = 1; i < got.length; i++) assert.ok(got[i]!.arrivalMs >= got[i - 1]!.arrivalMs);
});

Deno.test("ListSource yields its sessions once, in order", () => {
  const list = syntheticWorkload({ ...spec, sessions: 2 }, "d").sessions;
  const source = new ListSource(list);
  assert.equal(source.next(), list[0]);
  assert.equal(source.next(), list[1]);
  assert.equal(source.next(), undefined);
});
