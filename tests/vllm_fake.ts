/**
 * Helpers for the vLLM tests: an executable named `vllm` in a temporary folder that runs
 * the stand-in (`dynamo mocker --api vllm`) with vLLM's command line, and process checks.
 */
import { join } from "node:path";
import { DYNAMO, processAlive } from "./_harness.ts";

/** A folder holding an executable named `vllm`, and the PATH that finds it first. */
export interface FakeVllm {
  readonly dir: string;
  readonly bin: string;
  readonly path: string;
}

/**
 * Writes `DIR/vllm`: a POSIX sh script that execs the stand-in with `mockerFlags` (the
 * simulation's own settings) followed by its arguments (`serve MODEL ...`); a relaunch by
 * the same worker starts `restartDelaySecs` slower. `script` replaces the whole body (for
 * engines that misbehave).
 */
export async function installFakeVllm(
  options: { mockerFlags?: readonly string[]; script?: string; restartDelaySecs?: number } = {},
): Promise<FakeVllm> {
  const dir = await Deno.makeTempDir({ prefix: "dynamo-fake-vllm-" });
  const bin = join(dir, "vllm");
  const flags = (options.mockerFlags ?? ["--speedup-ratio", "20"]).map(quote).join(" ");
  // A restarted engine (its worker, $PPID, launched one before) takes this long to load.
  const delay = options.restartDelaySecs ?? 0;
  const body = options.script ?? [
    `marker=${quote(dir)}/launched-$PPID`,
    `delay=0; if [ -e "$marker" ]; then delay=${delay}; fi; : > "$marker"`,
    `exec ${quote(DYNAMO)} mocker --api vllm ${flags} --startup-time "$delay" "$@"`,
  ].join("\n");
  await Deno.writeTextFile(bin, `#!/bin/sh\n${body}\n`);
  await Deno.chmod(bin, 0o755);
  return { dir, bin, path: `${dir}:${Deno.env.get("PATH") ?? ""}` };
}

function quote(s: string): string {
  return `'${s.replaceAll("'", `'"'"'`)}'`;
}

/** Pids of live (non-zombie) processes whose process group is `pgid`. */
export function processGroupMembers(pgid: number): number[] {
  const out: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (fields[0] !== "Z" && Number(fields[2]) === pgid) out.push(Number(entry.name));
    } catch {
      // Gone meanwhile.
    }
  }
  return out;
}

/** Resolves once no live process is left in group `pgid`, or fails after `timeoutMs`. */
export async function waitGroupGone(pgid: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (processAlive(pgid) || processGroupMembers(pgid).length > 0) {
    if (Date.now() > deadline) {
      throw new Error(`Process group ${pgid} still has ${processGroupMembers(pgid)} alive`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
