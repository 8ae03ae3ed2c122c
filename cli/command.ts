import { type FlagSpec, formatFlags, type ParsedArgs, parseFlags, UsageError } from "./flags.ts";

/** One subcommand: its flags, its help text, and what it runs. */
export interface Command {
  readonly name: string;
  readonly summary: string;
  /** Usage line(s) after `dynamo <name>`. */
  readonly usage: string;
  /** Extra help text printed after the flags (examples, notes). */
  readonly details?: string;
  readonly flags: readonly FlagSpec[];
  /** Runs the command; the resolved exit code (0 ok, 1 runtime failure). */
  run(args: ParsedArgs): Promise<number>;
}

export function commandHelp(cmd: Command): string {
  const parts = [
    `dynamo ${cmd.name}: ${cmd.summary}`,
    "",
    `Usage: dynamo ${cmd.name} ${cmd.usage}`,
    "",
    "Flags:",
    formatFlags(cmd.flags, [{ left: "-h, --help", right: "Show this help" }]),
  ];
  if (cmd.details !== undefined) parts.push("", cmd.details);
  return parts.join("\n");
}

/** Parses flags and runs the command; usage errors become exit code 2. */
export async function runCommand(cmd: Command, argv: readonly string[]): Promise<number> {
  let args: ParsedArgs;
  try {
    args = parseFlags(cmd.flags, argv);
  } catch (err) {
    if (err instanceof UsageError) return usageFailure(cmd.name, err.message);
    throw err;
  }
  if (args.help) {
    console.log(commandHelp(cmd));
    return 0;
  }
  try {
    return await cmd.run(args);
  } catch (err) {
    if (err instanceof UsageError) return usageFailure(cmd.name, err.message);
    throw err;
  }
}

export function usageFailure(name: string, message: string): number {
  console.error(`dynamo ${name}: ${message}`);
  console.error(`Run "dynamo ${name} --help" for usage.`);
  return 2;
}
