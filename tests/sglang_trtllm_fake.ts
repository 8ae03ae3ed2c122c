/**
 * Helpers for the SGLang and TensorRT-LLM tests: an executable named `sglang` or
 * `trtllm-serve` in a temporary folder that runs the stand-in (`dynamo mocker --api
 * sglang|trtllm`) with the engine's own command line.
 */
import { join } from "node:path";
import { DYNAMO } from "./_harness.ts";

/** A folder holding an executable named like an engine's, and the PATH that finds it first. */
export interface FakeEngine {
  readonly dir: string;
  readonly bin: string;
  readonly path: string;
}

/**
 * Writes `DIR/NAME`: a POSIX sh script that execs `dynamo mocker --api API` with
 * `mockerFlags` (the simulation's own settings), then `--` and its own arguments (the
 * engine's command line). A relaunch by the same worker starts `restartDelaySecs` slower.
 */
export async function installFakeEngine(
  api: "sglang" | "trtllm",
  options: { name?: string; mockerFlags?: readonly string[]; restartDelaySecs?: number } = {},
): Promise<FakeEngine> {
  const dir = await Deno.makeTempDir({ prefix: `dynamo-fake-${api}-` });
  const bin = join(dir, options.name ?? (api === "sglang" ? "sglang" : "trtllm-serve"));
  const flags = (options.mockerFlags ?? ["--speedup-ratio", "20"]).map(quote).join(" ");
  const delay = options.restartDelaySecs ?? 0;
  const body = [
    `marker=${quote(dir)}/launched-$PPID`,
    `delay=0; if [ -e "$marker" ]; then delay=${delay}; fi; : > "$marker"`,
    `exec ${quote(DYNAMO)} mocker --api ${api} ${flags} --startup-time "$delay" -- "$@"`,
  ].join("\n");
  await Deno.writeTextFile(bin, `#!/bin/sh\n${body}\n`);
  await Deno.chmod(bin, 0o755);
  return { dir, bin, path: `${dir}:${Deno.env.get("PATH") ?? ""}` };
}

function quote(s: string): string {
  return `'${s.replaceAll("'", `'"'"'`)}'`;
}
