import { DynamoError } from "../runtime/errors/mod.ts";
import { Logger } from "../runtime/observability/mod.ts";
import { VERSION } from "../runtime/version.ts";
import { benchCommand } from "./bench.ts";
import { type Command, runCommand, usageFailure } from "./command.ts";
import { frontendCommand } from "./frontend.ts";
import { kvCommand, runKv } from "./kv.ts";
import { mockerCommand, runMocker } from "./mocker.ts";
import { routerCommand } from "./router.ts";
import { serveCommand } from "./serve.ts";
import { simCommand } from "./sim.ts";
import { statusCommand } from "./status.ts";
import { workerCommand } from "./worker.ts";

const COMMANDS: readonly Command[] = [
  serveCommand,
  frontendCommand,
  workerCommand,
  routerCommand,
  statusCommand,
  kvCommand,
  mockerCommand,
  benchCommand,
  simCommand,
];

const log = new Logger("dynamo");

function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length)) + 2;
  return [
    `dynamo ${VERSION}: datacenter-scale LLM inference serving`,
    "",
    "Usage: dynamo <command> [flags]",
    "",
    "Commands:",
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}${c.summary}`),
    "",
    "Flags:",
    "  -h, --help     Show help (also: dynamo <command> --help)",
    "  -V, --version  Print the version",
    "",
    "Quickstart: dynamo serve --recipe recipes/quickstart.yaml",
  ].join("\n");
}

/** Runs the CLI; returns the exit code (0 ok, 1 runtime failure, 2 usage error). */
export async function main(argv: readonly string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined || first === "-h" || first === "--help" || first === "help") {
    if (first === "help" && rest[0] !== undefined) return main([rest[0], "--help"]);
    console.log(mainHelp());
    return 0;
  }
  if (first === "-V" || first === "--version") {
    console.log(`dynamo ${VERSION}`);
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === first);
  if (command === undefined) {
    console.error(`dynamo: unknown command "${first}"`);
    console.error(`Run "dynamo --help" for the list of commands.`);
    return 2;
  }
  try {
    if (command === kvCommand) return await runKv(rest);
    if (command === mockerCommand) return await runMocker(rest);
    return await runCommand(command, rest);
  } catch (err) {
    if (err instanceof DynamoError && err.errorClass === "invalid_request") {
      return usageFailure(command.name, err.message);
    }
    log.error(`${command.name} failed`, {
      error: err instanceof Error ? err.message : String(err),
    });
    if (!(err instanceof DynamoError)) console.error(err);
    return 1;
  }
}
