/**
 * `deno task build`: writes dist/dynamo, one executable file that runs with no Deno, no
 * node_modules and no checkout.
 *
 * First it tries `deno compile`. Where compile's runtime (denort) cannot be downloaded —
 * as on machines that only reach the npm registry — it builds a self-extracting file
 * instead: a POSIX sh header followed by a gzipped tar of the Deno binary, the program and
 * its production npm packages. On first run the header unpacks the payload into a cache
 * folder named by the payload's hash (atomically: a temp dir, then rename) and from then on
 * execs Deno straight away.
 */
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { createHash } from "node:crypto";
import { VERSION } from "../runtime/version.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
/** The output folder: dist/, or DYNAMO_BUILD_OUT (tests build into a temp folder). */
const dist = Deno.env.get("DYNAMO_BUILD_OUT") ?? join(root, "dist");
const out = join(dist, "dynamo");

async function run(
  cmd: string,
  args: string[],
  options: { cwd?: string; timeoutMs?: number } = {},
) {
  const child = new Deno.Command(cmd, {
    args,
    cwd: options.cwd ?? root,
    stdout: "piped",
    stderr: "piped",
  })
    .spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 300_000);
  const result = await child.output();
  clearTimeout(timer);
  return {
    ok: result.success,
    out: new TextDecoder().decode(result.stdout),
    err: new TextDecoder().decode(result.stderr),
  };
}

async function tryDenoCompile(): Promise<boolean> {
  console.log("build: trying deno compile");
  const r = await run(Deno.execPath(), [
    "compile",
    "-A",
    "--quiet",
    "--no-check",
    "--include",
    "recipes",
    "--output",
    out,
    "main.ts",
  ], { timeoutMs: 120_000 });
  if (!r.ok) {
    // deno compile prints a cause chain; the line naming the URL says what was missing.
    // deno-lint-ignore no-control-regex
    const lines = r.err.replace(/\x1b\[[0-9;]*m/g, "").split("\n").map((l) => l.trim());
    const reason = lines.find((l) => /denort|url/i.test(l)) ?? lines.find((l) => l !== "");
    console.log(`build: deno compile is not available here: ${reason ?? "it failed"}`);
    return false;
  }
  const smoke = await run(out, ["--version"], { timeoutMs: 30_000 });
  if (!smoke.ok || !smoke.out.includes(VERSION)) {
    console.log("build: the compiled binary failed its smoke test; falling back");
    return false;
  }
  return true;
}

/** Production npm packages, pruned of what cannot run on this platform or is never loaded. */
const SKIP_PACKAGES = new Set(["node_modules/deno", "node_modules/@lenml/tokenizers"]);
const SKIP_PATHS = [
  /^node_modules\/zeromq\/(src|script|vcpkg\.json|CMakeLists\.txt|build\/(darwin|win32))/,
  /^node_modules\/@lenml\/tokenizer-qwen3\/(dist|src)/,
  /^node_modules\/@deno\//,
  /\.(map|md|ts)$/i,
];

function productionPackages(): string[] {
  const lock = JSON.parse(Deno.readTextFileSync(join(root, "package-lock.json"))) as {
    packages: Record<string, { dev?: boolean }>;
  };
  return Object.entries(lock.packages)
    .filter(([path, meta]) => path !== "" && meta.dev !== true && !SKIP_PACKAGES.has(path))
    .map(([path]) => path)
    .filter((path) => {
      try {
        return Deno.statSync(join(root, path)).isDirectory;
      } catch {
        return false; // an optional package for another platform
      }
    });
}

function* walk(dir: string): Generator<string> {
  for (const entry of Deno.readDirSync(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) yield* walk(path);
    else if (entry.isFile) yield path;
  }
}

function copyTree(from: string, to: string, keep: (rel: string) => boolean): void {
  for (const file of walk(from)) {
    const rel = relative(root, file);
    if (!keep(rel)) continue;
    const target = join(to, relative(from, file));
    Deno.mkdirSync(dirname(target), { recursive: true });
    Deno.copyFileSync(file, target);
  }
}

async function buildSelfExtracting(): Promise<void> {
  const stage = join(dist, ".stage");
  await Deno.remove(stage, { recursive: true }).catch(() => {});
  const app = join(stage, "app");
  Deno.mkdirSync(app, { recursive: true });
  const isSource = (rel: string) => !/_test\.ts$/.test(rel) && !/\/testdata\//.test(rel);
  for (const dir of ["cli", "runtime", "recipes"]) {
    copyTree(join(root, dir), join(app, dir), isSource);
  }
  for (const file of ["main.ts", "deno.json", "package.json"]) {
    Deno.copyFileSync(join(root, file), join(app, file));
  }
  for (const pkg of productionPackages()) {
    copyTree(
      join(root, pkg),
      join(app, pkg),
      (rel) => !SKIP_PATHS.some((re) => re.test(rel)) || rel.endsWith("package.json"),
    );
  }
  Deno.copyFileSync(Deno.execPath(), join(stage, "deno"));
  Deno.chmodSync(join(stage, "deno"), 0o755);
  const payload = join(dist, ".payload.tgz");
  const tar = await run("tar", ["-czf", payload, "-C", stage, "."]);
  if (!tar.ok) throw new Error(`tar failed: ${tar.err}`);
  const bytes = Deno.readFileSync(payload);
  const hash = createHash("sha256").update(bytes).digest("hex").slice(0, 16);
  const header = HEADER.replaceAll("@HASH@", `${VERSION}-${hash}`);
  const file = Deno.openSync(out, { write: true, create: true, truncate: true });
  file.writeSync(new TextEncoder().encode(header));
  let offset = 0;
  while (offset < bytes.length) offset += file.writeSync(bytes.subarray(offset));
  file.close();
  Deno.chmodSync(out, 0o755);
  await Deno.remove(stage, { recursive: true });
  await Deno.remove(payload);
  console.log(
    `build: wrote ${relative(root, out)} (self-extracting, ${
      (bytes.length / 2 ** 20).toFixed(1)
    } MiB)`,
  );
}

// The header ends with a line `__PAYLOAD__`; the gzipped tar starts right after it.
const HEADER = `#!/bin/sh
# dynamo @HASH@: a self-extracting single-file build (POSIX sh + tar + gzip).
set -e
id='@HASH@'
cache="\${DYNAMO_CACHE_DIR:-\${XDG_CACHE_HOME:-\${HOME:-/tmp}/.cache}/dynamo}"
dir="$cache/$id"
if [ ! -x "$dir/deno" ]; then
  mkdir -p "$cache"
  tmp=$(mktemp -d "$cache/.unpack.XXXXXX")
  line=$(awk '/^__PAYLOAD__$/ { print NR + 1; exit }' "$0")
  tail -n +"$line" "$0" | tar -xzf - -C "$tmp"
  mv "$tmp" "$dir" 2>/dev/null || rm -rf "$tmp"
fi
DENO_NO_UPDATE_CHECK=1 DENO_DIR="$dir/.deno" exec "$dir/deno" run -A --quiet --no-lock --config "$dir/app/deno.json" "$dir/app/main.ts" "$@"
__PAYLOAD__
`;

Deno.mkdirSync(dist, { recursive: true });
await Deno.remove(out).catch(() => {});
if (Deno.env.get("DYNAMO_BUILD_NO_COMPILE") === "1" || !(await tryDenoCompile())) {
  await buildSelfExtracting();
}
