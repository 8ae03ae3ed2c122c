/**
 * The behaviour every Engine must show, as Deno tests. An implementation's test file calls
 * `runEngineConformance` once with a factory; each case gets a fresh, started engine.
 */
import assert from "node:assert/strict";
import { DynamoError } from "../errors/mod.ts";
import { ENGINE_KINDS, type EngineOutput, type EngineRequest } from "../protocol/mod.ts";
import type { Engine, EngineInfo } from "./engine.ts";

/** An engine made for one test case, with what undoes it. */
export interface EngineUnderTest {
  readonly engine: Engine;
  cleanup(): Promise<void>;
}

export interface EngineConformanceOptions {
  /** Deadline for each stream and each wait (default 15 s). */
  readonly timeoutMs?: number;
  /** max_tokens of the exact-length cases (default 16). */
  readonly maxTokens?: number;
  /** Token ids prompts are made of start here (default 100); keep them inside the vocabulary. */
  readonly firstTokenId?: number;
}

/** What each case knows besides its engine. */
interface CaseContext {
  readonly engine: Engine;
  readonly info: EngineInfo;
  readonly timeoutMs: number;
  readonly maxTokens: number;
  /** A prompt of `len` token ids, varied by `salt`. */
  prompt(len: number, salt: number): number[];
}

const CASES: readonly (readonly [string, (ctx: CaseContext) => Promise<void>])[] = [
  ["start() returns sane info", startInfoIsSane],
  ["a request with ignore_eos streams exactly max_tokens and finishes with length", exactLength],
  ["concurrent requests all complete", concurrentRequests],
  ["aborting mid-stream ends the stream with cancelled and frees the request", abortMidStream],
  ["an over-long prompt is rejected with invalid_request", overLongPrompt],
  ["stop() ends in-flight streams", stopEndsStreams],
];

/** Registers the engine conformance cases under `name`. */
export function runEngineConformance(
  name: string,
  makeEngine: () => Promise<EngineUnderTest>,
  options: EngineConformanceOptions = {},
): void {
  const timeoutMs = options.timeoutMs ?? 15_000;
  const maxTokens = options.maxTokens ?? 16;
  const firstId = options.firstTokenId ?? 100;
  const prompt = (len: number, salt: number): number[] =>
    Array.from({ length: len }, (_, i) => firstId + ((i * 7 + salt * 13) % 1000));
  for (const [title, body] of CASES) {
    Deno.test(`${name}: ${title}`, async () => {
      const { engine, cleanup } = await makeEngine();
      try {
        const info = await withTimeout(engine.start(), timeoutMs, "start()");
        await body({ engine, info, timeoutMs, maxTokens, prompt });
      } finally {
        await cleanup();
      }
    });
  }
}

function startInfoIsSane({ engine, info }: CaseContext): Promise<void> {
  assert.ok((ENGINE_KINDS as readonly string[]).includes(info.kind), `kind ${info.kind}`);
  const sizes = [
    info.blockSizeTokens,
    info.totalKvBlocks,
    info.maxNumSeqs,
    info.maxNumBatchedTokens,
    info.contextLengthTokens,
  ];
  assert.ok(sizes.every((n) => Number.isInteger(n) && n > 0), `sizes ${sizes}`);
  const load = engine.load();
  assert.equal(load.num_requests_running, 0);
  assert.equal(load.num_requests_waiting, 0);
  assert.equal(load.kv_total_blocks, info.totalKvBlocks);
  return Promise.resolve();
}

async function exactLength({ engine, timeoutMs, maxTokens, prompt }: CaseContext): Promise<void> {
  const tokens = prompt(40, 1);
  const stream = engine.generate(request("exact", tokens, maxTokens), neverAborted());
  const items = await collect(stream, timeoutMs);
  const streamed = tokenCount(items);
  assert.equal(streamed, maxTokens);
  const last = items[items.length - 1]!;
  assert.equal(last.finish_reason, "length");
  assert.ok(items.slice(0, -1).every((item) => item.finish_reason === undefined));
  assert.equal(last.completion_usage?.prompt_tokens, tokens.length);
  assert.equal(last.completion_usage?.completion_tokens, streamed);
}

async function concurrentRequests(ctx: CaseContext): Promise<void> {
  const { engine, timeoutMs, maxTokens, prompt } = ctx;
  const streams = Array.from(
    { length: 8 },
    (_, k) => engine.generate(request(`c${k}`, prompt(20 + k * 5, k), maxTokens), neverAborted()),
  );
  const results = await Promise.all(streams.map((stream) => collect(stream, timeoutMs)));
  for (const items of results) {
    assert.equal(tokenCount(items), maxTokens);
    assert.equal(items[items.length - 1]!.finish_reason, "length");
  }
  await waitForIdle(engine, timeoutMs);
}

async function abortMidStream({ engine, info, timeoutMs, prompt }: CaseContext): Promise<void> {
  const tokens = prompt(30, 2);
  const longMax = Math.min(100_000, info.contextLengthTokens - tokens.length);
  const controller = new AbortController();
  const stream = engine.generate(request("abort", tokens, longMax), controller.signal);
  const items: EngineOutput[] = [];
  const consumed = (async () => {
    for await (const item of stream) {
      items.push(item);
      if (items.length === 1) controller.abort();
    }
  })();
  await withTimeout(consumed, timeoutMs, "the aborted stream");
  assert.equal(items[items.length - 1]!.finish_reason, "cancelled");
  const streamed = tokenCount(items);
  assert.ok(streamed < longMax, `streamed ${streamed} of ${longMax}`);
  await waitForIdle(engine, timeoutMs);
}

async function overLongPrompt({ engine, info, prompt }: CaseContext): Promise<void> {
  const tokens = prompt(info.contextLengthTokens + 1, 3);
  await assert.rejects(
    async () => {
      for await (const _ of engine.generate(request("long", tokens, 4), neverAborted())) {
        // A conforming engine never yields here.
      }
    },
    (err: unknown) => err instanceof DynamoError && err.errorClass === "invalid_request",
  );
}

async function stopEndsStreams({ engine, info, timeoutMs, prompt }: CaseContext): Promise<void> {
  const tokens = prompt(30, 4);
  const longMax = Math.min(100_000, info.contextLengthTokens - tokens.length);
  const stream = engine.generate(request("inflight", tokens, longMax), neverAborted());
  const items: EngineOutput[] = [];
  const consumed = (async () => {
    for await (const item of stream) {
      items.push(item);
      if (items.length === 1) void engine.stop();
    }
  })();
  await withTimeout(consumed, timeoutMs, "the stream after stop()");
  assert.equal(items[items.length - 1]!.finish_reason, "cancelled");
}

function tokenCount(items: readonly EngineOutput[]): number {
  return items.reduce((n, item) => n + item.token_ids.length, 0);
}

function request(id: string, tokenIds: number[], maxTokens: number): EngineRequest {
  return {
    request_id: id,
    model: "conformance",
    token_ids: tokenIds,
    stop_conditions: { max_tokens: maxTokens, min_tokens: 0, ignore_eos: true, stop_token_ids: [] },
    sampling_options: { temperature: null, top_p: null, top_k: null, seed: null },
    eos_token_ids: [],
  };
}

function neverAborted(): AbortSignal {
  return new AbortController().signal;
}

async function collect(
  stream: AsyncIterable<EngineOutput>,
  timeoutMs: number,
): Promise<EngineOutput[]> {
  const items: EngineOutput[] = [];
  await withTimeout(
    (async () => {
      for await (const item of stream) items.push(item);
    })(),
    timeoutMs,
    "the stream",
  );
  return items;
}

async function waitForIdle(engine: Engine, timeoutMs: number): Promise<void> {
  const idle = (): boolean => {
    const load = engine.load();
    return load.num_requests_running === 0 && load.num_requests_waiting === 0 &&
      load.active_prefill_tokens === 0 && load.active_decode_blocks === 0;
  };
  const deadline = performance.now() + timeoutMs;
  while (!idle()) {
    // An external engine reports load with some delay; poll it, within the deadline.
    if (performance.now() > deadline) {
      assert.fail(`load() not idle: ${JSON.stringify(engine.load())}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`Conformance: ${what} did not finish in ${ms} ms`)),
      ms,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
