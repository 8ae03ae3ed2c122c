/** The CLI's contract: help, version, and exit code 2 with a message naming the bad flag. */
import assert from "node:assert/strict";
import { QUICKSTART, runDynamo } from "./_harness.ts";
import { VERSION } from "../runtime/version.ts";

Deno.test("dynamo --version prints the version and exits 0", async () => {
  const r = await runDynamo(["--version"]);
  assert.equal(r.code, 0);
  assert.equal(r.stdout.trim(), `dynamo ${VERSION}`);
});

Deno.test("dynamo --help lists every subcommand; each has its own --help", async () => {
  const r = await runDynamo(["--help"]);
  assert.equal(r.code, 0);
  for (const cmd of ["serve", "frontend", "worker", "status"]) {
    assert.match(r.stdout, new RegExp(`\\n  ${cmd} `));
    const sub = await runDynamo([cmd, "--help"]);
    assert.equal(sub.code, 0, sub.stderr);
    assert.match(sub.stdout, new RegExp(`^dynamo ${cmd}: `));
    assert.match(sub.stdout, /--discovery-dir/);
  }
});

Deno.test("dynamo rejects bad usage with exit code 2 and a message naming the flag and value", async () => {
  const cases: [string[], RegExp][] = [
    [["frontend", "--http-port", "99999"], /--http-port: "99999" \(must be at most 65535\)/],
    [
      ["frontend", "--router-mode", "fastest"],
      /--router-mode: "fastest" \(allowed: round-robin, random, kv\)/,
    ],
    [
      ["worker", "--model-path", "x", "--speedup-ratio", "0"],
      /--speedup-ratio: "0" \(must be greater than 0\)/,
    ],
    [["worker", "--block-size", "1.5"], /--block-size: "1.5" \(expected an integer\)/],
    [["status", "--bogus"], /Unknown flag --bogus/],
    [["serve"], /Missing required flag --recipe/],
    [["launch"], /unknown command "launch"/],
  ];
  for (const [args, re] of cases) {
    const r = await runDynamo(args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, re);
  }
});

Deno.test("dynamo reads flag defaults from the environment and names the variable when bad", async () => {
  const help = await runDynamo(["frontend", "--help"], { env: { DYN_HTTP_PORT: "abc" } });
  assert.equal(help.code, 0, "--help works whatever the environment holds");
  const r = await runDynamo(["frontend"], { env: { DYN_HTTP_PORT: "abc" } });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /DYN_HTTP_PORT \(for --http-port\): "abc"/);
});

Deno.test("dynamo serve names the bad recipe field and its allowed values", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const text = await Deno.readTextFile(QUICKSTART);
    await Deno.writeTextFile(
      `${dir}/bad.yaml`,
      text.replace("router_mode: round-robin", "router_mode: best"),
    );
    const r = await runDynamo(["serve", "--recipe", `${dir}/bad.yaml`]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /frontend\.router_mode/);
    assert.match(r.stderr, /round-robin/);
    await Deno.writeTextFile(
      `${dir}/bad2.yaml`,
      text.replace("speedup-ratio: 1", "speedup-ratio: fast"),
    );
    const r2 = await runDynamo(["serve", "--recipe", `${dir}/bad2.yaml`]);
    assert.equal(r2.code, 2);
    assert.match(r2.stderr, /workers\[0\]\.args: Invalid value for --speedup-ratio: "fast"/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("dynamo status --json prints an empty array for an empty discovery directory", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const r = await runDynamo(["status", "--json", "--discovery-dir", dir]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
