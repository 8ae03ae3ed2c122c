import { DynamoError } from "../../errors/mod.ts";

/** How a modelled flag reads its value: `bool` flags take none (`--flag`, `--no-flag`). */
export type FlagKind = "string" | "int" | "number" | "bool";

/** An engine command line as a stand-in reads it. */
export interface EngineArgv {
  /** Modelled flags given, by canonical name; the last occurrence wins. */
  readonly values: ReadonlyMap<string, string | boolean>;
  /** Arguments that are no flag and no flag's value, in order. */
  readonly positionals: readonly string[];
  /** Flags the stand-in accepted without modelling them (with their value, if any). */
  readonly ignored: readonly string[];
}

/** What `parseEngineArgv` knows about the engine's flags. */
export interface EngineArgvSpec {
  /** The engine, for errors (`sglang serve`). */
  readonly engine: string;
  /** Modelled flags by every spelling, each with its canonical name and kind. */
  readonly flags: Readonly<Record<string, readonly [canonical: string, kind: FlagKind]>>;
  /**
   * Boolean flags the stand-in ignores; listed so that they never take the next argument as
   * their value. Any other unknown `--flag` takes the next argument as its value unless that
   * starts with `-`.
   */
  readonly ignoredBooleans: ReadonlySet<string>;
}

/**
 * Reads a command line the way argparse and click do, leniently: `--flag value` or
 * `--flag=value`, the last occurrence wins, `--no-flag` turns a modelled boolean off,
 * unknown flags are accepted and listed in `ignored`. A modelled flag without its value is
 * an `invalid_request` error naming it.
 */
export function parseEngineArgv(argv: readonly string[], spec: EngineArgvSpec): EngineArgv {
  const values = new Map<string, string | boolean>();
  const positionals: string[] = [];
  const ignored: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith("-") || arg === "-") {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const inline = eq > 0 ? arg.slice(eq + 1) : undefined;
    const negated = name.startsWith("--no-") ? `--${name.slice(5)}` : undefined;
    const known = spec.flags[name] ?? (negated === undefined ? undefined : spec.flags[negated]);
    if (known !== undefined && known[1] === "bool") {
      values.set(known[0], negated === undefined || spec.flags[name] !== undefined);
      continue;
    }
    const takesValue = known !== undefined ||
      (!spec.ignoredBooleans.has(name) && negated === undefined);
    const next = argv[i + 1];
    const value = inline ??
      (takesValue && next !== undefined && !/^-[-a-zA-Z]/.test(next) ? argv[++i] : undefined);
    if (known === undefined) {
      ignored.push(value === undefined ? name : `${name} ${value}`);
      continue;
    }
    if (value === undefined) throw argvError(spec.engine, `missing value for ${name}`);
    values.set(known[0], value);
  }
  return { values, positionals, ignored };
}

/** An integer flag's value within [min, max], or undefined when not given. */
export function intArg(
  argv: EngineArgv,
  engine: string,
  flag: string,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number | undefined {
  const raw = argv.values.get(flag);
  if (raw === undefined || typeof raw === "boolean") return undefined;
  const n = Number(raw);
  if (!/^-?\d+$/.test(raw) || n < min || n > max) {
    throw argvError(engine, `argument ${flag}: invalid int value: '${raw}'`);
  }
  return n;
}

/** A number flag's value within (0, max], or undefined when not given. */
export function numberArg(
  argv: EngineArgv,
  engine: string,
  flag: string,
  max = Number.MAX_VALUE,
): number | undefined {
  const raw = argv.values.get(flag);
  if (raw === undefined || typeof raw === "boolean") return undefined;
  const n = Number(raw);
  if (raw.trim() === "" || !Number.isFinite(n) || n <= 0 || n > max) {
    throw argvError(engine, `argument ${flag}: invalid float value: '${raw}'`);
  }
  return n;
}

/** A string flag's value, or undefined when not given. */
export function stringArg(argv: EngineArgv, flag: string): string | undefined {
  const raw = argv.values.get(flag);
  return typeof raw === "string" ? raw : undefined;
}

/** A boolean flag's value, or `fallback` when not given. */
export function boolArg(argv: EngineArgv, flag: string, fallback: boolean): boolean {
  const raw = argv.values.get(flag);
  return typeof raw === "boolean" ? raw : fallback;
}

/** The usage error of an engine's command line (exit 2 from `dynamo mocker`). */
export function argvError(engine: string, message: string): DynamoError {
  return new DynamoError("invalid_request", "invalid_engine_args", `${engine}: ${message}`);
}
