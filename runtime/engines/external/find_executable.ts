import { delimiter, isAbsolute, join, resolve } from "node:path";
import { DynamoError } from "../../errors/mod.ts";

/** What `findExecutable` needs to know; `path` and `cwd` default to the process's. */
export interface FindExecutableOptions {
  /** The engine's name, for the error message (`vllm`, `sglang`). */
  readonly engine: string;
  /** The flag that named `name` explicitly, if one did (`--engine-bin`). */
  readonly flag?: string;
  /** The search path (`$PATH`). */
  readonly path?: string;
  readonly cwd?: string;
}

/**
 * Resolves an engine's executable: a name with a `/` is taken as a path (relative to the
 * working directory); a bare name is looked up in each PATH entry in order, as a shell
 * does. Throws `invalid_request` (a usage error: exit 2) naming the executable and every
 * place it looked.
 */
export function findExecutable(name: string, options: FindExecutableOptions): string {
  const given = options.flag === undefined ? `executable "${name}"` : `${options.flag} ${name}`;
  if (name.includes("/")) {
    const path = isAbsolute(name) ? name : resolve(options.cwd ?? Deno.cwd(), name);
    if (isExecutableFile(path)) return path;
    throw new DynamoError(
      "invalid_request",
      "engine_not_found",
      `Cannot start engine "${options.engine}": ${given} is not an executable file (looked at ${path})`,
      { param: options.flag },
    );
  }
  const searchPath = options.path ?? Deno.env.get("PATH") ?? "";
  const entries = searchPath.split(delimiter);
  for (const entry of entries) {
    // An empty PATH entry means the working directory, as in POSIX shells.
    const candidate = join(entry === "" ? options.cwd ?? Deno.cwd() : entry, name);
    if (isExecutableFile(candidate)) return isAbsolute(candidate) ? candidate : resolve(candidate);
  }
  const searched = entries.length === 0 || searchPath === "" ? "PATH is empty" : entries
    .map((e) => e === "" ? "." : e).join(delimiter);
  throw new DynamoError(
    "invalid_request",
    "engine_not_found",
    `Cannot start engine "${options.engine}": ${given} not found on PATH (searched ${searched}); install it or pass --engine-bin PATH`,
    { param: options.flag },
  );
}

function isExecutableFile(path: string): boolean {
  try {
    const info = Deno.statSync(path);
    return info.isFile && info.mode !== null && (info.mode & 0o111) !== 0;
  } catch {
    return false;
  }
}
