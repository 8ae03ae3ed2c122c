import { join } from "node:path";
import { DynamoError } from "../../errors/mod.ts";

/** Where the model's tokenizer files are, and what config.json says about its context. */
export interface ModelDir {
  readonly dir: string;
  /** config.json's `max_position_embeddings`, when the file has one. */
  readonly maxPositionEmbeddings: number | undefined;
}

/**
 * Finds the folder with a model's `tokenizer.json` (and `tokenizer_config.json`,
 * `config.json`) for the model card: `modelPath` if given; else `model` itself when it is
 * a directory; else the Hugging Face cache's snapshot of the `model` id that an engine
 * downloaded (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`:
 * `models--ORG--NAME/snapshots/<refs/main>`). Throws `invalid_request` listing the places
 * it looked.
 */
export async function findModelDir(
  model: string | undefined,
  modelPath: string | undefined,
  options: {
    /** The flag that names a tokenizer folder, for the error (default `--model-path`). */
    readonly flag?: string;
    readonly env?: (name: string) => string | undefined;
  } = {},
): Promise<ModelDir> {
  const env = options.env ?? ((name: string) => Deno.env.get(name));
  const flag = options.flag ?? "--model-path";
  const looked: string[] = [];
  const candidates: string[] = [];
  if (modelPath !== undefined) candidates.push(modelPath);
  else if (model !== undefined) {
    candidates.push(model);
    const snapshot = await hubSnapshot(model, env);
    if (snapshot !== undefined) candidates.push(snapshot);
  }
  for (const dir of candidates) {
    looked.push(dir);
    if (await isFile(join(dir, "tokenizer.json"))) {
      return { dir, maxPositionEmbeddings: await maxPositionEmbeddings(dir) };
    }
  }
  const what = modelPath !== undefined ? `${flag} ${modelPath}` : `model "${model}"`;
  throw new DynamoError(
    "invalid_request",
    "model_files_not_found",
    `Cannot find tokenizer.json for ${what} (looked in ${
      looked.join(", ") || "no folder"
    }); pass ${flag} DIR, a folder with the model's tokenizer.json, tokenizer_config.json and config.json`,
    { param: flag.replace(/^--/, "") },
  );
}

async function hubSnapshot(
  model: string,
  env: (name: string) => string | undefined,
): Promise<string | undefined> {
  if (!/^[\w.-]+\/[\w.-]+$/.test(model)) return undefined;
  const home = env("HOME");
  const hub = env("HF_HUB_CACHE") ??
    (env("HF_HOME") !== undefined ? join(env("HF_HOME")!, "hub") : undefined) ??
    (home === undefined ? undefined : join(home, ".cache", "huggingface", "hub"));
  if (hub === undefined) return undefined;
  const repo = join(hub, `models--${model.replace("/", "--")}`);
  try {
    const ref = (await Deno.readTextFile(join(repo, "refs", "main"))).trim();
    return /^[\w.-]+$/.test(ref) ? join(repo, "snapshots", ref) : undefined;
  } catch {
    return undefined;
  }
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

async function maxPositionEmbeddings(dir: string): Promise<number | undefined> {
  try {
    const config = JSON.parse(await Deno.readTextFile(join(dir, "config.json")));
    const n = config?.max_position_embeddings;
    return Number.isSafeInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}
