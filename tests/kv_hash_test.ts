/** `dynamo kv hash` as a user runs it: tokens on stdin, decimal hashes on stdout. */
import assert from "node:assert/strict";
import fc from "fast-check";
import { expectedHashes } from "../runtime/tokens/testing.ts";
import { DYNAMO } from "./_harness.ts";

async function kvHash(args: string[], stdin: string) {
  const child = new Deno.Command(DYNAMO, {
    args: ["kv", "hash", ...args],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(stdin));
  await writer.close();
  const out = await child.output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

Deno.test("dynamo kv hash agrees with an independent XXH3-64 for random tokens, block sizes and LoRA names", async () => {
  const cases = fc.sample(
    fc.record({
      tokens: fc.array(fc.integer({ min: 0, max: 0xffff_ffff }), { minLength: 1, maxLength: 200 }),
      blockSize: fc.integer({ min: 1, max: 32 }),
      lora: fc.option(fc.string({ minLength: 1, maxLength: 12 }), { nil: undefined }),
    }),
    { numRuns: 6, seed: 42 },
  );
  cases.push({
    tokens: Array.from({ length: 130 }, (_, i) => i),
    blockSize: 64,
    lora: "adapter-ü",
  });
  for (const c of cases) {
    const args = ["--block-size", String(c.blockSize)];
    if (c.lora !== undefined) args.push("--lora-name", c.lora);
    const r = await kvHash(args, JSON.stringify(c.tokens));
    assert.equal(r.code, 0, r.stderr);
    const expected = await expectedHashes(c.tokens, c.blockSize, c.lora);
    assert.deepEqual(JSON.parse(r.stdout), {
      local_hashes: expected.local.map(String),
      sequence_hashes: expected.sequence.map(String),
    });
  }
});

Deno.test("dynamo kv hash rejects bad input with exit code 2 naming the problem", async () => {
  const bad = await kvHash(["--block-size", "4"], "[1, 2, -3]");
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /Invalid token at index 2: -3/);
  const notJson = await kvHash(["--block-size", "4"], "hello");
  assert.equal(notJson.code, 2);
  const noSize = await kvHash([], "[1]");
  assert.equal(noSize.code, 2);
  assert.match(noSize.stderr, /--block-size/);
});
