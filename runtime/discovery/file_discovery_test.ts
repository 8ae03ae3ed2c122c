import assert from "node:assert/strict";
import { join } from "node:path";
import { setLogSink } from "../observability/mod.ts";
import { BUCKETS, discoveryKey } from "../protocol/mod.ts";
import { runDiscoveryConformance, sampleEndpoint, sampleModel } from "./conformance.ts";
import { defaultDiscoveryDir, FileDiscovery, type FileDiscoveryOptions } from "./file_discovery.ts";
import { encodeKeyForFile } from "./key_encoding.ts";
import { EVENT_DEADLINE_MS, WatchReader } from "./_watch_reader.ts";

const KEY = "dynamo/backend/generate/1a2b";
const instancesDir = (root: string): string => join(root, "v1", "instances");

runDiscoveryConformance("FileDiscovery", async () => {
  const rootDir = await Deno.makeTempDir({ prefix: "dynamo_discovery_" });
  // A TTL well above the refresh interval, so a loaded test machine never expires a live entry.
  const options = { rootDir, ttlMs: 3_000, rescanMs: 200 };
  const a = await FileDiscovery.open(options);
  const b = await FileDiscovery.open(options);
  return {
    a,
    b,
    cleanup: async () => {
      await a.close();
      await b.close();
      await Deno.remove(rootDir, { recursive: true });
    },
  };
});

/** Opens one FileDiscovery on a fresh directory, runs `body`, and always cleans up. */
async function withDiscovery(
  options: Omit<FileDiscoveryOptions, "rootDir">,
  body: (discovery: FileDiscovery, rootDir: string) => Promise<void>,
): Promise<void> {
  const rootDir = await Deno.makeTempDir({ prefix: "dynamo_discovery_" });
  const discovery = await FileDiscovery.open({ rootDir, ...options });
  try {
    await body(discovery, rootDir);
  } finally {
    await discovery.close();
    await Deno.remove(rootDir, { recursive: true });
  }
}

/** Polls `condition` every 20 ms until it holds; fails after `deadlineMs`. */
async function waitUntil(
  what: string,
  condition: () => Promise<boolean>,
  deadlineMs = EVENT_DEADLINE_MS,
): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (!(await condition())) {
    if (Date.now() > deadline) {
      throw new Error(`Timed out after ${deadlineMs} ms waiting until ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

async function namesIn(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.sort();
}

/** Writes a file the way a foreign process would: no temp file, no backend. */
/**
 * Writes a key file as another process would: through a `.tmp_` file and a rename, as
 * Dynamo's writers do, so a watcher never reads it half-written (an in-place write is first
 * an empty file, which a busy machine's watcher may see and report as invalid).
 */
async function writeForeign(dir: string, key: string, text: string): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  const path = join(dir, encodeKeyForFile(key));
  const tmp = join(dir, `.tmp_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`);
  await Deno.writeTextFile(tmp, text);
  await Deno.rename(tmp, path);
  return path;
}

function past(ms: number): Date {
  return new Date(Date.now() - ms);
}

Deno.test("FileDiscovery.put() writes the raw JSON to a file named by the percent-encoded key", () =>
  withDiscovery({}, async (discovery, rootDir) => {
    await discovery.put(BUCKETS.instances, KEY, sampleEndpoint(0x1a2b));
    // The exact name Dynamo's file store would use, and no temp file left behind.
    assert.deepEqual(await namesIn(instancesDir(rootDir)), ["dynamo%2Fbackend%2Fgenerate%2F1a2b"]);
    const text = await Deno.readTextFile(
      join(instancesDir(rootDir), "dynamo%2Fbackend%2Fgenerate%2F1a2b"),
    );
    assert.deepEqual(JSON.parse(text), sampleEndpoint(0x1a2b));
    await discovery.put(BUCKETS.models, "ns/c-1/e.p_2/ff", sampleModel(1));
    assert.deepEqual(await namesIn(join(rootDir, "v1", "mdc")), ["ns%2Fc%2D1%2Fe%2Ep%5F2%2Fff"]);
  }));

Deno.test("FileDiscovery.open() rejects a TTL below 1 s as invalid_request", async () => {
  await assert.rejects(FileDiscovery.open({ rootDir: "/nonexistent", ttlMs: 999 }), {
    errorClass: "invalid_request",
    param: "ttlMs",
  });
  await assert.rejects(FileDiscovery.open({ rootDir: "/nonexistent", rescanMs: 0 }), {
    errorClass: "invalid_request",
    param: "rescanMs",
  });
});

Deno.test("FileDiscovery sweep removes another process's expired file and reports it removed", () =>
  withDiscovery({ ttlMs: 1_000, rescanMs: 200 }, async (discovery, rootDir) => {
    const watch = new WatchReader(discovery, BUCKETS.instances);
    try {
      const path = await writeForeign(
        instancesDir(rootDir),
        KEY,
        JSON.stringify(sampleEndpoint(1)),
      );
      assert.deepEqual(await watch.next(), { kind: "added", key: KEY, value: sampleEndpoint(1) });
      // The other process died 20 s ago: its lease is long gone.
      await Deno.utime(path, past(20_000), past(20_000));
      assert.deepEqual(await watch.next(), { kind: "removed", key: KEY });
      await waitUntil("the expired file is deleted", async () => !(await exists(path)));
    } finally {
      await watch.stop();
    }
  }));

Deno.test("FileDiscovery refresh sweeps expired files in buckets it only writes to", () =>
  withDiscovery({ ttlMs: 1_000 }, async (discovery, rootDir) => {
    await discovery.put(BUCKETS.instances, "dynamo/backend/generate/1", sampleEndpoint(1));
    const orphan = await writeForeign(
      instancesDir(rootDir),
      KEY,
      JSON.stringify(sampleEndpoint(2)),
    );
    const deadTemp = join(instancesDir(rootDir), ".tmp_00112233aabbccdd");
    await Deno.writeTextFile(deadTemp, "{");
    for (const path of [orphan, deadTemp]) await Deno.utime(path, past(20_000), past(20_000));
    await waitUntil(
      "the orphan is swept",
      async () => !(await exists(orphan)) && !(await exists(deadTemp)),
    );
    // Its own entry is refreshed, not swept.
    assert.deepEqual([...(await discovery.list(BUCKETS.instances)).keys()], [
      "dynamo/backend/generate/1",
    ]);
  }));

Deno.test("FileDiscovery refresh touches owned files and rewrites one that vanished", () =>
  withDiscovery({ ttlMs: 1_000 }, async (discovery, rootDir) => {
    await discovery.put(BUCKETS.instances, KEY, sampleEndpoint(1));
    const path = join(instancesDir(rootDir), encodeKeyForFile(KEY));
    await Deno.utime(path, past(500), past(500));
    await waitUntil("the lease is refreshed", async () => {
      const mtime = (await Deno.stat(path)).mtime?.getTime() ?? 0;
      return Date.now() - mtime < 400;
    });
    // As if a peer swept it while this process was stalled past the TTL.
    await Deno.remove(path);
    await waitUntil("the entry is rewritten", () => exists(path));
    assert.deepEqual(JSON.parse(await Deno.readTextFile(path)), sampleEndpoint(1));
  }));

Deno.test("FileDiscovery.watch() emits nothing for lease touches", () =>
  withDiscovery({ ttlMs: 1_000, rescanMs: 100 }, async (discovery, rootDir) => {
    await discovery.put(BUCKETS.instances, KEY, sampleEndpoint(1));
    const watch = new WatchReader(discovery, BUCKETS.instances);
    try {
      assert.equal((await watch.next()).kind, "added");
      const path = join(instancesDir(rootDir), encodeKeyForFile(KEY));
      const firstMtime = (await Deno.stat(path)).mtime?.getTime();
      await waitUntil("two lease touches happened", async () => {
        const mtime = (await Deno.stat(path)).mtime?.getTime() ?? 0;
        return mtime > (firstMtime ?? 0) + 500;
      });
      await discovery.put(BUCKETS.instances, "dynamo/backend/generate/2", sampleEndpoint(2));
      assert.deepEqual(await watch.next(), {
        kind: "added",
        key: "dynamo/backend/generate/2",
        value: sampleEndpoint(2),
      });
    } finally {
      await watch.stop();
    }
  }));

Deno.test("FileDiscovery.watch() and list() ignore .tmp_ files", () =>
  withDiscovery({ rescanMs: 100 }, async (discovery, rootDir) => {
    const watch = new WatchReader(discovery, BUCKETS.instances);
    try {
      await Deno.mkdir(instancesDir(rootDir), { recursive: true });
      await Deno.writeTextFile(
        join(instancesDir(rootDir), ".tmp_0123456789abcdef"),
        JSON.stringify(sampleEndpoint(9)),
      );
      await writeForeign(instancesDir(rootDir), KEY, JSON.stringify(sampleEndpoint(1)));
      assert.deepEqual(await watch.next(), { kind: "added", key: KEY, value: sampleEndpoint(1) });
      assert.deepEqual([...(await discovery.list(BUCKETS.instances)).keys()], [KEY]);
    } finally {
      await watch.stop();
    }
  }));

Deno.test("FileDiscovery skips invalid files and logs each one once", async () => {
  const lines: string[] = [];
  const previousSink = setLogSink((line) => lines.push(line));
  try {
    await withDiscovery({ rescanMs: 100 }, async (discovery, rootDir) => {
      const dir = instancesDir(rootDir);
      await writeForeign(dir, "dynamo/backend/generate/bad1", "{not json");
      await writeForeign(dir, "dynamo/backend/generate/bad2", JSON.stringify({ type: "Nope" }));
      await writeForeign(dir, KEY, JSON.stringify(sampleEndpoint(1)));
      const watch = new WatchReader(discovery, BUCKETS.instances);
      try {
        assert.deepEqual(await watch.next(), { kind: "added", key: KEY, value: sampleEndpoint(1) });
        // A valid write after later rescans proves the watcher survived them.
        await writeForeign(dir, "dynamo/backend/generate/2", JSON.stringify(sampleEndpoint(2)));
        assert.equal((await watch.next()).key, "dynamo/backend/generate/2");
      } finally {
        await watch.stop();
      }
      await discovery.list(BUCKETS.instances);
      // A lease touch by the (foreign) owner is not new content: still no second warning.
      const bad1 = join(dir, encodeKeyForFile("dynamo/backend/generate/bad1"));
      await Deno.utime(bad1, new Date(), new Date());
      const listed = await discovery.list(BUCKETS.instances);
      assert.deepEqual([...listed.keys()], [KEY, "dynamo/backend/generate/2"].sort());
    });
  } finally {
    setLogSink(previousSink);
  }
  const warnings = lines.filter((line) => line.includes("Skipping invalid discovery entry"));
  assert.equal(warnings.length, 2, warnings.join("\n"));
});

Deno.test("FileDiscovery.watch() finds plain writes by rescanning when notifications are off", () =>
  withDiscovery({ rescanMs: 100, useFsEvents: false }, async (discovery, rootDir) => {
    const watch = new WatchReader(discovery, BUCKETS.instances);
    try {
      const dir = instancesDir(rootDir);
      const path = await writeForeign(dir, KEY, JSON.stringify(sampleEndpoint(1)));
      assert.deepEqual(await watch.next(), { kind: "added", key: KEY, value: sampleEndpoint(1) });
      // An in-place rewrite, same inode, as an editor or another NFS client might do. Its
      // size differs: file mtimes come from the kernel's coarse clock, so a same-size rewrite
      // within one tick of a rescan's read is invisible until the next change (our own
      // writers rename a new inode into place, so they never hit this).
      await Deno.writeTextFile(path, JSON.stringify(sampleEndpoint(1, 8)));
      assert.deepEqual(await watch.next(), {
        kind: "added",
        key: KEY,
        value: sampleEndpoint(1, 8),
      });
      await Deno.remove(path);
      assert.deepEqual(await watch.next(), { kind: "removed", key: KEY });
    } finally {
      await watch.stop();
    }
  }));

Deno.test("FileDiscovery.watch() recovers when the bucket directory is removed", () =>
  withDiscovery({ rescanMs: 100 }, async (discovery, rootDir) => {
    const watch = new WatchReader(discovery, BUCKETS.instances);
    try {
      await writeForeign(instancesDir(rootDir), KEY, JSON.stringify(sampleEndpoint(1)));
      assert.equal((await watch.next()).kind, "added");
      // Moved away in one step (as `mv` or a tmp cleaner might): a recursive remove would race
      // the watcher, which recreates the directory as soon as it sees it gone.
      await Deno.rename(join(rootDir, "v1"), join(rootDir, "v1.old"));
      await Deno.remove(join(rootDir, "v1.old"), { recursive: true });
      assert.deepEqual(await watch.next(), { kind: "removed", key: KEY });
      await waitUntil("the directory is recreated", () => exists(instancesDir(rootDir)));
      await writeForeign(instancesDir(rootDir), KEY, JSON.stringify(sampleEndpoint(2)));
      assert.deepEqual(await watch.next(), { kind: "added", key: KEY, value: sampleEndpoint(2) });
    } finally {
      await watch.stop();
    }
  }));

Deno.test("FileDiscovery.close() deletes its files from disk and leaves others' files", () =>
  withDiscovery({}, async (discovery, rootDir) => {
    await discovery.put(BUCKETS.instances, KEY, sampleEndpoint(1));
    const foreign = await writeForeign(
      instancesDir(rootDir),
      "other/x/y/2",
      JSON.stringify(sampleEndpoint(2)),
    );
    await discovery.close();
    assert.deepEqual(await namesIn(instancesDir(rootDir)), [encodeKeyForFile("other/x/y/2")]);
    assert.equal(await exists(foreign), true);
  }));

Deno.test("defaultDiscoveryDir() uses DYN_FILE_KV, else dynamo under the temp directory", () => {
  const saved = { kv: Deno.env.get("DYN_FILE_KV"), tmp: Deno.env.get("TMPDIR") };
  const restore = (name: string, value: string | undefined): void => {
    if (value === undefined) Deno.env.delete(name);
    else Deno.env.set(name, value);
  };
  try {
    Deno.env.set("DYN_FILE_KV", "/shared/nfs/dynamo-kv");
    assert.equal(defaultDiscoveryDir(), "/shared/nfs/dynamo-kv");
    Deno.env.delete("DYN_FILE_KV");
    Deno.env.set("TMPDIR", "/scratch/tmp");
    assert.equal(defaultDiscoveryDir(), "/scratch/tmp/dynamo");
  } finally {
    restore("DYN_FILE_KV", saved.kv);
    restore("TMPDIR", saved.tmp);
  }
});

Deno.test("FileDiscovery: a SIGKILLed worker disappears from a watcher within TTL plus one refresh", async () => {
  const rootDir = await Deno.makeTempDir({ prefix: "dynamo_discovery_" });
  const instanceId = 0x1234;
  const key = discoveryKey("dynamo", "backend", "generate", instanceId);
  const path = join(instancesDir(rootDir), encodeKeyForFile(key));
  const repoRoot = new URL("../..", import.meta.url).pathname;
  const script = new URL("./testdata/put_and_wait.ts", import.meta.url).pathname;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, rootDir, String(instanceId)],
    cwd: repoRoot,
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const stdout = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  // Same TTL as the worker: each process judges others' leases by its own TTL. 2 s (not
  // the 1 s minimum) so a loaded machine that stalls the child's refresh cannot expire it.
  const frontend = await FileDiscovery.open({ rootDir, ttlMs: 2_000, rescanMs: 200 });
  const watch = new WatchReader(frontend, BUCKETS.instances);
  try {
    await readUntil(stdout, "ready", 30_000);
    const added = await watch.nextWhere((event) => event.key === key);
    assert.deepEqual(added, { kind: "added", key, value: sampleEndpoint(instanceId) });

    // Let the worker prove it is alive by refreshing its lease at least once.
    const createdMs = (await Deno.stat(path)).mtime?.getTime() ?? 0;
    await waitUntil("the worker refreshes its lease", async () => {
      return ((await Deno.stat(path)).mtime?.getTime() ?? 0) > createdMs;
    });
    const lastTouchMs = (await Deno.stat(path)).mtime?.getTime() ?? Date.now();
    const killedAtMs = Date.now();
    child.kill("SIGKILL");
    await watch.nextWhere((event) => event.key === key && event.kind === "removed");
    const removedAtMs = Date.now();
    console.log(
      `SIGKILL to removed: ${removedAtMs - killedAtMs} ms; last lease touch to removed: ${
        removedAtMs - lastTouchMs
      } ms (ttl 2000 ms, refresh 667 ms, rescan 200 ms)`,
    );
    assert.equal(await exists(path), false);
    assert.equal((await child.status).signal, "SIGKILL");
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already dead.
    }
    await child.status;
    await stdout.cancel();
    await child.stdin.close().catch(() => {});
    await watch.stop();
    await frontend.close();
    await Deno.remove(rootDir, { recursive: true });
  }
});

/** Reads `reader` until the text so far contains `marker`, within `deadlineMs`. */
async function readUntil(
  reader: ReadableStreamDefaultReader<string>,
  marker: string,
  deadlineMs: number,
): Promise<void> {
  let text = "";
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(
        new Error(
          `No "${marker}" from the child within ${deadlineMs} ms; got ${JSON.stringify(text)}`,
        ),
      );
    }, deadlineMs);
  });
  try {
    while (!text.includes(marker)) {
      const chunk = await Promise.race([reader.read(), timeout]);
      if (chunk.done) {
        throw new Error(`Child exited before "${marker}"; got ${JSON.stringify(text)}`);
      }
      text += chunk.value;
    }
  } finally {
    clearTimeout(timer);
  }
}
