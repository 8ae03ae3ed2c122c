/**
 * `deno task build` writes one executable that runs with no Deno, no node_modules and no
 * checkout: copied alone into an empty folder, with a bare environment, it still works.
 */
import assert from "node:assert/strict";
import { ROOT } from "./_harness.ts";
import { VERSION } from "../runtime/version.ts";

Deno.test({
  name: "dist/dynamo runs --version and --help from an empty directory with no Deno on PATH",
  sanitizeResources: false,
  async fn() {
    const out = await Deno.makeTempDir({ prefix: "dynamo-build-" });
    const empty = await Deno.makeTempDir({ prefix: "dynamo-empty-" });
    try {
      const build = await new Deno.Command(`${ROOT}scripts/deno`, {
        args: ["task", "build"],
        cwd: ROOT,
        env: { DYNAMO_BUILD_OUT: out },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const log = new TextDecoder().decode(build.stdout) + new TextDecoder().decode(build.stderr);
      assert.equal(build.code, 0, log);
      await Deno.copyFile(`${out}/dynamo`, `${empty}/dynamo`);
      await Deno.chmod(`${empty}/dynamo`, 0o755);
      const run = async (args: string[]) => {
        const r = await new Deno.Command(`${empty}/dynamo`, {
          args,
          cwd: empty,
          clearEnv: true,
          env: { PATH: "/usr/bin:/bin", HOME: empty },
          stdout: "piped",
          stderr: "piped",
        }).output();
        return {
          code: r.code,
          out: new TextDecoder().decode(r.stdout),
          err: new TextDecoder().decode(r.stderr),
        };
      };
      const version = await run(["--version"]);
      assert.equal(version.code, 0, version.err);
      assert.equal(version.out.trim(), `dynamo ${VERSION}`);
      const help = await run(["--help"]);
      assert.equal(help.code, 0, help.err);
      for (const cmd of ["serve", "frontend", "worker", "status"]) {
        assert.match(help.out, new RegExp(`\\n  ${cmd} `));
      }
      const serveHelp = await run(["serve", "--help"]);
      assert.match(serveHelp.out, /--recipe/);
      const bad = await run(["frontend", "--http-port", "nope"]);
      assert.equal(bad.code, 2);
      assert.match(bad.err, /--http-port: "nope"/);
    } finally {
      await Deno.remove(out, { recursive: true });
      await Deno.remove(empty, { recursive: true });
    }
  },
});
