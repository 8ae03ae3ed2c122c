import { fileURLToPath } from "node:url";

/**
 * The argv that starts this same program again, for `serve`'s children: the compiled
 * binary itself, or the Deno that runs us with our config and entry point (a checkout, or
 * the folder the single-file build unpacked into).
 */
export function selfArgv(): string[] {
  if (import.meta.url.includes("/deno-compile-")) return [Deno.execPath()];
  const config = fileURLToPath(new URL("../deno.json", import.meta.url));
  const main = fileURLToPath(new URL("../main.ts", import.meta.url));
  return [Deno.execPath(), "run", "-A", "--quiet", "--config", config, main];
}
