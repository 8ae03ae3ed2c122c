import assert from "node:assert/strict";
import { DynamoError } from "../errors/mod.ts";
import { parseRecipe } from "./recipe.ts";

const GOOD = `
model:
  name: Qwen/Qwen3-0.6B
  path: ../models/qwen
frontend:
  port: 8123
workers:
  - engine: mocker
    replicas: 2
    args:
      speedup-ratio: 10
`;

Deno.test("parseRecipe() fills defaults and resolves paths against the recipe's folder", () => {
  const r = parseRecipe(GOOD, "/srv/recipes/q.yaml");
  assert.equal(r.model.path, "/srv/models/qwen");
  assert.equal(r.frontend.port, 8123);
  assert.equal(r.frontend.host, "127.0.0.1");
  assert.equal(r.frontend.router_mode, "round-robin");
  assert.equal(r.workers[0]!.role, "agg");
  assert.equal(r.workers[0]!.replicas, 2);
  assert.deepEqual(r.workers[0]!.args, { "speedup-ratio": 10 });
});

function errorOf(text: string): DynamoError {
  try {
    parseRecipe(text, "r.yaml");
  } catch (err) {
    assert.ok(err instanceof DynamoError);
    return err;
  }
  assert.fail("expected an error");
}

Deno.test("parseRecipe() names the bad field and the allowed values", () => {
  const err = errorOf(GOOD.replace("engine: mocker", "engine: tgi"));
  assert.equal(err.param, "workers[0].engine");
  assert.match(err.message, /workers\[0\]\.engine/);
  assert.match(err.message, /mocker/);
  const mode = errorOf(GOOD.replace("port: 8123", "router_mode: fastest"));
  assert.match(mode.message, /frontend\.router_mode/);
  assert.match(mode.message, /round-robin/);
});

Deno.test("parseRecipe() rejects unknown keys and bad YAML", () => {
  assert.match(errorOf(GOOD + "extra: 1\n").message, /extra/);
  assert.match(errorOf("model: [").message, /Invalid recipe r\.yaml/);
  assert.match(
    errorOf(GOOD.replace("replicas: 2", "replicas: 0")).message,
    /workers\[0\]\.replicas/,
  );
});
