import { parseArgs } from "node:util";
import { type EnvName, readEnv } from "../runtime/config/env.ts";

/** A command-line mistake: printed with the command's usage hint, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

interface FlagBase {
  readonly name: string;
  readonly help: string;
  readonly env?: EnvName;
  /** Shown in --help as the name of the value, e.g. `--http-port <n>`. */
  readonly valueName?: string;
}

export type FlagSpec =
  | FlagBase & {
    readonly type: "string";
    readonly default?: string;
    readonly choices?: readonly string[];
  }
  | FlagBase & {
    readonly type: "int";
    readonly default?: number;
    readonly min?: number;
    readonly max?: number;
  }
  | FlagBase & {
    readonly type: "number";
    readonly default?: number;
    readonly min?: number;
    readonly max?: number;
    readonly exclusiveMin?: boolean;
  }
  | FlagBase & { readonly type: "boolean"; readonly default?: boolean };

export type FlagValue = string | number | boolean | undefined;

export interface ParsedArgs {
  /** Values by flag name; flags with no value and no default are undefined. */
  readonly values: Readonly<Record<string, FlagValue>>;
  /** Flags given on the command line (not from env or default). */
  readonly explicit: ReadonlySet<string>;
  readonly positionals: readonly string[];
  /** Arguments after `--`, untouched. */
  readonly rest: readonly string[];
  readonly help: boolean;
}

/**
 * Parses argv against flag specs: command line first, then the flag's environment variable,
 * then its default. Every bad value is a UsageError naming the flag and the value.
 */
export function parseFlags(specs: readonly FlagSpec[], argv: readonly string[]): ParsedArgs {
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = {
    help: { type: "boolean", short: "h" },
  };
  for (const s of specs) options[s.name] = { type: s.type === "boolean" ? "boolean" : "string" };
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      options,
      allowPositionals: true,
      allowNegative: true,
      strict: true,
      tokens: true,
    });
  } catch (err) {
    throw new UsageError(describeParseError(err));
  }
  const terminator = parsed.tokens.find((t) => t.kind === "option-terminator");
  const restStart = terminator === undefined ? argv.length : terminator.index + 1;
  const positionals = parsed.tokens
    .filter((t) => t.kind === "positional" && t.index < restStart)
    .map((t) => (t as { value: string }).value);
  const raw = parsed.values as Record<string, string | boolean | undefined>;
  const help = raw["help"] === true;
  const values: Record<string, FlagValue> = {};
  const explicit = new Set<string>();
  for (const spec of specs) {
    // --help always works, even when a flag or an environment variable holds a bad value.
    if (help) break;
    const given = raw[spec.name];
    if (given !== undefined) explicit.add(spec.name);
    const fromEnv = spec.env === undefined ? undefined : readEnv(spec.env);
    if (given !== undefined) values[spec.name] = convert(spec, given, `--${spec.name}`);
    else if (fromEnv !== undefined) {
      values[spec.name] = convert(spec, fromEnv, `${spec.env} (for --${spec.name})`);
    } else values[spec.name] = spec.default;
  }
  return {
    values,
    explicit,
    positionals,
    rest: argv.slice(restStart),
    help,
  };
}

function convert(spec: FlagSpec, value: string | boolean, source: string): FlagValue {
  if (spec.type === "boolean") {
    if (typeof value === "boolean") return value;
    if (/^(1|true|yes|on)$/i.test(value)) return true;
    if (/^(0|false|no|off)$/i.test(value)) return false;
    throw new UsageError(`Invalid value for ${source}: "${value}" (expected true or false)`);
  }
  const text = String(value);
  if (spec.type === "string") {
    if (spec.choices !== undefined && !spec.choices.includes(text)) {
      throw new UsageError(
        `Invalid value for ${source}: "${text}" (allowed: ${spec.choices.join(", ")})`,
      );
    }
    return text;
  }
  const num = Number(text);
  const isInt = spec.type === "int";
  if (text.trim() === "" || !Number.isFinite(num) || (isInt && !Number.isInteger(num))) {
    throw new UsageError(
      `Invalid value for ${source}: "${text}" (expected ${isInt ? "an integer" : "a number"})`,
    );
  }
  const exclusiveMin = spec.type === "number" && spec.exclusiveMin === true;
  if (spec.min !== undefined && (exclusiveMin ? num <= spec.min : num < spec.min)) {
    throw new UsageError(
      `Invalid value for ${source}: "${text}" (must be ${
        exclusiveMin ? "greater than" : "at least"
      } ${spec.min})`,
    );
  }
  if (spec.max !== undefined && num > spec.max) {
    throw new UsageError(`Invalid value for ${source}: "${text}" (must be at most ${spec.max})`);
  }
  return num;
}

function describeParseError(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const code = (err as { code?: string }).code;
  const unknown = /Unknown option '([^']+)'/.exec(message);
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && unknown !== null) {
    return `Unknown flag ${unknown[1]}`;
  }
  const missing = /Option '([^ ']+)[^']*' argument missing/.exec(message);
  if (missing !== null) return `Missing value for ${missing[1]}`;
  return message.replace(/\. To specify a positional argument.*$/s, "");
}

/** Renders the flag table for --help; `extra` rows (e.g. `-h, --help`) align with it. */
export function formatFlags(
  specs: readonly FlagSpec[],
  extra: readonly { left: string; right: string }[] = [],
): string {
  const rows = specs.map((s) => {
    const value = s.type === "boolean"
      ? ""
      : ` <${s.valueName ?? (s.type === "string" ? "value" : s.type === "int" ? "n" : "x")}>`;
    const left = s.type === "boolean" ? `--[no-]${s.name}` : `--${s.name}${value}`;
    const notes: string[] = [];
    if (s.type === "string" && s.choices !== undefined) {
      notes.push(`one of: ${s.choices.join(", ")}`);
    }
    if (s.default !== undefined) notes.push(`default: ${String(s.default)}`);
    if (s.env !== undefined) notes.push(`env: ${s.env}`);
    return { left, right: s.help + (notes.length > 0 ? ` (${notes.join("; ")})` : "") };
  }).concat(extra);
  const width = Math.min(34, Math.max(...rows.map((r) => r.left.length)) + 2);
  // A flag too long for the column gets its description on the next line.
  return rows.map((r) =>
    r.left.length + 2 > width
      ? `  ${r.left}\n  ${" ".repeat(width)}${r.right}`
      : `  ${r.left.padEnd(width)}${r.right}`
  ).join("\n");
}
