import { parse as parseYaml } from "yaml";
import { dirname, isAbsolute, resolve } from "node:path";
import { z } from "zod";
import { DynamoError } from "../errors/mod.ts";
import { ROUTER_MODES } from "../router/mod.ts";

/**
 * Engines a recipe may name today (vllm, sglang, trtllm: `dynamo worker --engine ...`, a
 * supervised engine process).
 */
export const RECIPE_ENGINES = ["mocker", "vllm", "sglang", "trtllm"] as const;

const ArgValue = z.union([z.string(), z.number(), z.boolean()]);

const WorkerGroupSchema = z.object({
  name: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, "must be lowercase letters, digits and '-'")
    .max(40).optional(),
  engine: z.enum(RECIPE_ENGINES),
  role: z.enum(["agg"]).default("agg"),
  replicas: z.number().int().min(1).max(256).default(1),
  /**
   * Engine options, named as the worker's flags without the leading `--` (for external
   * engines also `model`, `engine-bin`, `engine-args`, `gpu-memory-utilization`,
   * `engine-ready-timeout-secs`, ...).
   */
  args: z.record(z.string(), ArgValue).default({}),
}).strict();

export const RecipeSchema = z.object({
  model: z.object({
    /** The served model name clients ask for. */
    name: z.string().min(1),
    /** Directory with tokenizer.json and tokenizer_config.json (relative to the recipe). */
    path: z.string().min(1),
  }).strict(),
  namespace: z.string().regex(/^[A-Za-z0-9_-]+$/).optional(),
  discovery_dir: z.string().optional(),
  frontend: z.object({
    host: z.string().default("127.0.0.1"),
    port: z.number().int().min(0).max(65535).default(8000),
    router_mode: z.enum(ROUTER_MODES).default("round-robin"),
    args: z.record(z.string(), ArgValue).default({}),
  }).strict().default({ host: "127.0.0.1", port: 8000, router_mode: "round-robin", args: {} }),
  workers: z.array(WorkerGroupSchema).min(1).max(64),
}).strict();

export type Recipe = z.infer<typeof RecipeSchema>;
export type WorkerGroup = z.infer<typeof WorkerGroupSchema>;

/** Reads and validates a recipe; relative paths in it are resolved against its folder. */
export async function loadRecipe(path: string): Promise<Recipe> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    throw new DynamoError(
      "invalid_request",
      "recipe_unreadable",
      `Cannot read recipe ${path}: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  return parseRecipe(text, path);
}

export function parseRecipe(text: string, path: string): Recipe {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new DynamoError(
      "invalid_request",
      "recipe_invalid",
      `Invalid recipe ${path}: ${err instanceof Error ? err.message.split("\n")[0] : String(err)}`,
    );
  }
  const result = RecipeSchema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const field = issue.path.map((p) => typeof p === "number" ? `[${p}]` : `.${String(p)}`).join("")
      .replace(/^\./, "");
    throw new DynamoError(
      "invalid_request",
      "recipe_invalid",
      `Invalid recipe ${path}: ${field === "" ? "" : `${field}: `}${issue.message}`,
      { param: field },
    );
  }
  const recipe = result.data;
  const base = dirname(resolve(path));
  const abs = (p: string): string => isAbsolute(p) ? p : resolve(base, p);
  return {
    ...recipe,
    model: { ...recipe.model, path: abs(recipe.model.path) },
    ...(recipe.discovery_dir === undefined ? {} : { discovery_dir: abs(recipe.discovery_dir) }),
  };
}
