import { DynamoError } from "../../errors/mod.ts";

/**
 * The value of `--flag V` or `--flag=V` in an engine command line: the last occurrence, as
 * argparse and click keep it. `aliases` are other spellings of the same option.
 */
export function lastFlagValue(
  args: readonly string[],
  flag: string,
  aliases: readonly string[] = [],
): string | undefined {
  const names = [flag, ...aliases];
  let value: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (names.includes(arg) && i + 1 < args.length) value = args[++i];
    else {
      const eq = arg.indexOf("=");
      if (eq > 0 && names.includes(arg.slice(0, eq))) value = arg.slice(eq + 1);
    }
  }
  return value;
}

/** A positive integer engine flag from `args`, or `fallback`; a bad value is `invalid_request`. */
export function positiveIntFlag(
  engine: string,
  args: readonly string[],
  flag: string,
  fallback: number,
  aliases: readonly string[] = [],
): number {
  const raw = lastFlagValue(args, flag, aliases);
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n) || n < 1) {
    throw new DynamoError(
      "invalid_request",
      "invalid_engine_flag",
      `Invalid value for ${engine}'s ${flag}: "${raw}" (expected a positive integer)`,
      { param: flag },
    );
  }
  return n;
}

/**
 * Refuses extra engine arguments that set a flag the worker sets itself (given again they
 * would silently win, and the worker would wait on the wrong port or route with the wrong
 * block size): `invalid_request` (exit 2) naming the flag and what to do instead.
 */
export function checkOwnedFlags(
  engine: string,
  extraArgs: readonly string[],
  owned: Readonly<Record<string, string>>,
): void {
  for (const arg of extraArgs) {
    const flag = arg.split("=", 1)[0]!;
    const instead = Object.hasOwn(owned, flag) ? owned[flag] : undefined;
    if (instead !== undefined) {
      throw new DynamoError(
        "invalid_request",
        "engine_flag_owned",
        `Cannot pass ${flag} to ${engine} after "--": ${instead}`,
        { param: flag },
      );
    }
  }
}
