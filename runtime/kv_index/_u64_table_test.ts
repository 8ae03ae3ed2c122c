import assert from "node:assert/strict";
import fc from "fast-check";
import { U64Table } from "./_u64_table.ts";

Deno.test("U64Table.set() and get() store values under both halves of the key", () => {
  const table = new U64Table();
  assert.equal(table.set(0, 7, 1), -1);
  assert.equal(table.set(1, 7, 2), -1);
  assert.equal(table.set(0xffff_ffff, 0xffff_ffff, 3), -1);
  assert.equal(table.get(0, 7), 1);
  assert.equal(table.get(1, 7), 2);
  assert.equal(table.get(0xffff_ffff, 0xffff_ffff), 3);
  assert.equal(table.get(2, 7), -1);
  assert.equal(table.set(1, 7, 9), 2);
  assert.equal(table.size, 3);
});

Deno.test("U64Table.probe() finds a key or the slot to insert it at", () => {
  const table = new U64Table();
  table.set(5, 5, 50);
  const found = table.probe(5, 5);
  assert.ok(found >= 0);
  assert.equal(table.valueAt(found), 50);
  table.replaceAt(found, 51);
  assert.equal(table.get(5, 5), 51);
  const missing = table.probe(6, 6);
  assert.ok(missing < 0);
  table.insertAt(missing, 6, 6, 60);
  assert.equal(table.get(6, 6), 60);
  assert.equal(table.size, 2);
});

Deno.test("U64Table agrees with a Map under random inserts and deletes", () => {
  // Few distinct keys, so that probe runs collide and deletions shift entries back.
  const key = fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 40 }));
  const op = fc.tuple(fc.boolean(), key, fc.nat(1000));
  fc.assert(
    fc.property(fc.array(op, { maxLength: 300, size: "max" }), (ops) => {
      const table = new U64Table();
      const model = new Map<string, number>();
      for (const [insert, [hi, lo], value] of ops) {
        const k = `${hi}:${lo}`;
        if (insert) {
          assert.equal(table.set(hi, lo, value), model.get(k) ?? -1);
          model.set(k, value);
        } else {
          assert.equal(table.delete(hi, lo), model.get(k) ?? -1);
          model.delete(k);
        }
        assert.equal(table.size, model.size);
      }
      for (let hi = 0; hi <= 3; hi++) {
        for (let lo = 0; lo <= 40; lo++) {
          assert.equal(table.get(hi, lo), model.get(`${hi}:${lo}`) ?? -1);
        }
      }
      assert.deepEqual(
        [...table.values()].sort((x, y) => x - y),
        [...model.values()].sort((x, y) => x - y),
      );
    }),
    { numRuns: 200 },
  );
});
