import { fileURLToPath } from "node:url";
import { loadRecipe, type Recipe } from "../runtime/config/mod.ts";
import { defaultDiscoveryDir } from "../runtime/discovery/mod.ts";
import { DynamoError } from "../runtime/errors/mod.ts";
import { Logger } from "../runtime/observability/mod.ts";
import { ROUTER_MODES } from "../runtime/router/mod.ts";
import { type ChildSpec, denoSpawner, Supervisor } from "../runtime/supervisor/mod.ts";
import { deferred, systemClock } from "../runtime/util/mod.ts";
import type { Command } from "./command.ts";
import { COMMON_FLAGS, resolveCommon, shutdownSignal } from "./common.ts";
import { parseFlags, UsageError } from "./flags.ts";
import { selfArgv } from "./self.ts";
import { workerCommand } from "./worker.ts";
import { frontendCommand } from "./frontend.ts";

const log = new Logger("serve");

export const serveCommand: Command = {
  name: "serve",
  summary: "Start a whole deployment from a recipe: frontend and workers as supervised processes",
  usage: "--recipe FILE|NAME [--http-port N] [--router-mode MODE] [--discovery-dir DIR]",
  details: [
    "A recipe (YAML) names the model, the frontend and the worker groups; see the README's",
    '"Recipes" section. Flags given here override the recipe. Crashed roles are restarted',
    "with exponential backoff; Ctrl-C or SIGTERM stops them all.",
    "",
    "Example: dynamo serve --recipe recipes/quickstart.yaml",
  ].join("\n"),
  flags: [
    {
      name: "recipe",
      type: "string",
      valueName: "file",
      help: "Recipe file (YAML), or the name of a bundled recipe (quickstart)",
    },
    {
      name: "http-port",
      type: "int",
      min: 0,
      max: 65535,
      help: "Frontend HTTP port (overrides the recipe)",
    },
    {
      name: "router-mode",
      type: "string",
      choices: ROUTER_MODES,
      help: "Router mode (overrides the recipe)",
    },
    ...COMMON_FLAGS.map((f) => f.name === "namespace" ? { ...f, default: undefined } : f),
  ],
  async run(args) {
    const recipePath = args.values["recipe"] as string | undefined;
    if (recipePath === undefined) throw new UsageError("Missing required flag --recipe");
    let recipe: Recipe;
    try {
      recipe = await loadRecipe(resolveRecipePath(recipePath));
    } catch (err) {
      if (err instanceof DynamoError) throw new UsageError(err.message);
      throw err;
    }
    const common = resolveCommon(args);
    const discoveryDir = (args.values["discovery-dir"] as string | undefined) ??
      recipe.discovery_dir ??
      defaultDiscoveryDir();
    const namespace = (args.values["namespace"] as string | undefined) ?? recipe.namespace ??
      "dynamo";
    const port = (args.values["http-port"] as number | undefined) ?? recipe.frontend.port;
    const routerMode = (args.values["router-mode"] as string | undefined) ??
      recipe.frontend.router_mode;
    const shared = [
      "--discovery-dir",
      discoveryDir,
      "--namespace",
      namespace,
      "--log-level",
      common.logLevel,
    ];
    const children = childSpecs(recipe, { shared, port, routerMode });
    assertPortFree(recipe.frontend.host, port);
    return await supervise(children, { recipe, port, discoveryDir, namespace });
  },
};

function childSpecs(
  recipe: Recipe,
  o: { shared: string[]; port: number; routerMode: string },
): ChildSpec[] {
  const self = selfArgv();
  const env = { DYN_PARENT_PID: String(Deno.pid) };
  const frontendArgs = [
    "--http-host",
    recipe.frontend.host,
    "--http-port",
    String(o.port),
    "--router-mode",
    o.routerMode,
    ...o.shared,
    ...argsFromMap(recipe.frontend.args),
  ];
  validateChildArgs(frontendCommand.flags, frontendArgs, "frontend.args");
  const specs: ChildSpec[] = [{
    name: "frontend",
    argv: [...self, "frontend", ...frontendArgs],
    env,
  }];
  recipe.workers.forEach((group, g) => {
    const workerArgs = [
      "--engine",
      group.engine,
      "--role",
      group.role,
      "--model-name",
      recipe.model.name,
      "--model-path",
      recipe.model.path,
      ...o.shared,
      ...argsFromMap(group.args),
    ];
    validateChildArgs(workerCommand.flags, workerArgs, `workers[${g}].args`);
    const base = group.name ??
      (recipe.workers.length === 1 ? group.engine : `${group.engine}-${g}`);
    for (let r = 0; r < group.replicas; r++) {
      specs.push({ name: `${base}-${r}`, argv: [...self, "worker", ...workerArgs], env });
    }
  });
  return specs;
}

/**
 * `{speedup-ratio: 10}` → `["--speedup-ratio=10"]`; booleans become `--x` / `--no-x`. The
 * `=` form keeps a value that starts with "-" (a negative number, `engine-args: "--x 1"`)
 * from being read as a flag.
 */
function argsFromMap(map: Readonly<Record<string, string | number | boolean>>): string[] {
  return Object.entries(map).map(([key, value]) => {
    const flag = key.replaceAll("_", "-");
    if (typeof value === "boolean") return value ? `--${flag}` : `--no-${flag}`;
    return `--${flag}=${String(value)}`;
  });
}

/** Checks a child's flags before starting anything, so a recipe typo fails fast (exit 2). */
function validateChildArgs(
  flags: Parameters<typeof parseFlags>[0],
  argv: string[],
  where: string,
): void {
  try {
    parseFlags(flags, argv);
  } catch (err) {
    if (err instanceof UsageError) throw new UsageError(`Invalid recipe ${where}: ${err.message}`);
    throw err;
  }
}

function assertPortFree(host: string, port: number): void {
  if (port === 0) return;
  try {
    const listener = Deno.listen({ hostname: host, port });
    listener.close();
  } catch (err) {
    throw new DynamoError(
      "unavailable",
      "port_in_use",
      `Cannot serve on ${host}:${port}: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
}

async function supervise(
  children: ChildSpec[],
  o: { recipe: Recipe; port: number; discoveryDir: string; namespace: string },
): Promise<number> {
  let exitCode = 0;
  const signal = shutdownSignal();
  const done = deferred<void>();
  signal.promise.then(() => done.resolve());
  const supervisor = new Supervisor({
    spawner: denoSpawner,
    clock: systemClock,
    output: (line) => console.log(line),
    restartBackoffInitialMs: 500,
    restartBackoffMaxMs: 15_000,
    maxRestarts: 5,
    restartWindowMs: 60_000,
    stopTimeoutMs: 40_000,
    onGiveUp: (name) => {
      log.error("A role keeps crashing; stopping the deployment", { child: name });
      exitCode = 1;
      done.resolve();
    },
  });
  const workers = children.length - 1;
  log.info("Starting deployment", {
    model: o.recipe.model.name,
    workers,
    namespace: o.namespace,
    discovery_dir: o.discoveryDir,
  });
  for (const c of children) supervisor.start(c);
  const host = o.recipe.frontend.host === "0.0.0.0" ? "127.0.0.1" : o.recipe.frontend.host;
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${o.port}`;
  const ready = announceWhenReady(url, o.recipe.model.name, workers);
  await done.promise;
  ready.cancel();
  log.info("Stopping deployment");
  await supervisor.stop();
  signal.dispose();
  return exitCode;
}

/** Polls the frontend until it lists the model, then prints where the API is. */
function announceWhenReady(url: string, model: string, workers: number): { cancel(): void } {
  const controller = new AbortController();
  (async () => {
    const deadline = Date.now() + 120_000;
    while (!controller.signal.aborted && Date.now() < deadline) {
      try {
        const res = await fetch(`${url}/v1/models`, {
          signal: AbortSignal.any([controller.signal, AbortSignal.timeout(2_000)]),
        });
        const body = await res.json() as { data?: { id: string }[] };
        if (body.data?.some((m) => m.id === model)) {
          console.log(
            `dynamo serve: ready: model "${model}" on ${workers} worker(s); OpenAI API at ${url}/v1`,
          );
          return;
        }
      } catch {
        // Not up yet.
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    if (!controller.signal.aborted) {
      log.warn("The frontend did not list the model within 120 s", { url });
    }
  })();
  return { cancel: () => controller.abort() };
}

/**
 * A recipe is a file path, or the name of a recipe bundled with dynamo (`quickstart`), so
 * the single-file build can start the quickstart without a checkout.
 */
function resolveRecipePath(value: string): string {
  try {
    Deno.statSync(value);
    return value;
  } catch {
    if (!/^[a-z0-9-]+$/.test(value)) return value;
    const bundled = fileURLToPath(new URL(`../recipes/${value}.yaml`, import.meta.url));
    try {
      Deno.statSync(bundled);
      return bundled;
    } catch {
      return value;
    }
  }
}
