import assert from "node:assert/strict";
import fc from "fast-check";
import { DynamoError } from "../../errors/mod.ts";
import { MockerCore } from "./mocker_core.ts";
import type { MockerOptionsInput } from "./mocker_options.ts";
import type { MockerOutput } from "./scheduler.ts";
import { TEST_EOS, TEST_VOCABULARY, testRequest } from "./_test_helpers.ts";

type Command =
  | {
    kind: "add";
    promptLen: number;
    maxTokens: number;
    group: number;
    ignoreEos: boolean;
    minTokens: number;
  }
  | { kind: "cancel"; pick: number }
  | { kind: "step" };

const commandArb: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("add" as const),
      promptLen: fc.integer({ min: 0, max: 24 }),
      maxTokens: fc.integer({ min: 0, max: 20 }),
      group: fc.integer({ min: 0, max: 3 }),
      ignoreEos: fc.boolean(),
      minTokens: fc.integer({ min: 0, max: 3 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("cancel" as const), pick: fc.nat() }) },
  { weight: 4, arbitrary: fc.constant({ kind: "step" as const }) },
);

const optionsArb: fc.Arbitrary<MockerOptionsInput> = fc.record({
  numGpuBlocks: fc.integer({ min: 6, max: 16 }),
  blockSizeTokens: fc.constantFrom(1, 2, 4),
  maxNumSeqs: fc.integer({ min: 1, max: 4 }),
  maxNumBatchedTokens: fc.integer({ min: 24, max: 40 }),
  enablePrefixCaching: fc.boolean(),
  enableChunkedPrefill: fc.boolean(),
  preemptionMode: fc.constantFrom("lifo" as const, "fifo" as const),
  maxWaitingRequests: fc.integer({ min: 3, max: 6 }),
  meanOutputTokens: fc.integer({ min: 1, max: 10 }),
});

interface Tracked {
  promptLen: number;
  maxTokens: number;
  minTokens: number;
  ignoreEos: boolean;
  tokens: number[];
  ends: MockerOutput[];
}

/** Runs one command sequence, checking the core's limits after every pass. */
function runScenario(options: MockerOptionsInput, commands: readonly Command[]): void {
  const core = new MockerCore({ options, vocabulary: TEST_VOCABULARY });
  const o = core.options;
  const requests = new Map<string, Tracked>();
  const live: string[] = [];
  const record = (out: MockerOutput): void => {
    const r = requests.get(out.requestId);
    assert.ok(r !== undefined, `output for unknown request ${out.requestId}`);
    r.tokens.push(...out.tokenIds);
    if (out.finishReason === undefined) return;
    r.ends.push(out);
    live.splice(live.indexOf(out.requestId), 1);
  };
  let now = 0;
  const step = (): void => {
    const s = core.step(now);
    now += s.durationMs;
    assert.ok(
      s.pass.scheduledTokens <= o.maxNumBatchedTokens,
      `scheduled ${s.pass.scheduledTokens}`,
    );
    assert.ok(s.pass.runningRequests <= o.maxNumSeqs);
    assert.ok(core.load().kv_used_blocks <= o.numGpuBlocks);
    core.checkInvariants();
    s.outputs.forEach(record);
  };
  let next = 0;
  for (const cmd of commands) {
    if (cmd.kind === "step") step();
    else if (cmd.kind === "cancel") {
      if (live.length === 0) continue;
      const out = core.cancel(live[cmd.pick % live.length]!);
      assert.equal(out?.finishReason, "cancelled");
      record(out!);
      core.checkInvariants();
    } else {
      const id = `r${next++}`;
      const req = testRequest(id, { length: cmd.promptLen, base: 100 * cmd.group }, cmd);
      try {
        core.addRequest(req, now);
      } catch (err) {
        assert.ok(
          err instanceof DynamoError && ["invalid_request", "overloaded"].includes(err.errorClass),
        );
        continue;
      }
      requests.set(id, { ...cmd, tokens: [], ends: [] });
      live.push(id);
    }
  }
  for (let i = 0; core.hasWork(); i++) {
    assert.ok(i < 5000, "core did not drain");
    step();
  }
  assert.deepEqual(live, []);
  for (const [id, r] of requests) checkRequest(id, r, o.numGpuBlocks * o.blockSizeTokens);
  assert.deepEqual(core.load(), {
    active_decode_blocks: 0,
    active_prefill_tokens: 0,
    kv_used_blocks: 0,
    kv_total_blocks: o.numGpuBlocks,
    num_requests_running: 0,
    num_requests_waiting: 0,
  });
}

function checkRequest(id: string, r: Tracked, capacityTokens: number): void {
  assert.equal(r.ends.length, 1, `request ${id} ended ${r.ends.length} times`);
  const end = r.ends[0]!;
  assert.equal(end.usage?.completion_tokens, r.tokens.length, `request ${id} usage`);
  assert.equal(end.usage?.prompt_tokens, r.promptLen);
  assert.ok(r.tokens.length <= r.maxTokens);
  if (end.finishReason === "stop") {
    assert.equal(r.tokens[r.tokens.length - 1], TEST_EOS);
    assert.ok(r.tokens.length > r.minTokens);
  }
  // A sequence that fits in the cache on its own always reaches max_tokens with ignore_eos.
  if (
    end.finishReason === "length" && r.ignoreEos && r.promptLen + r.maxTokens - 1 <= capacityTokens
  ) {
    assert.equal(r.tokens.length, r.maxTokens, `request ${id} stopped early`);
  }
}

Deno.test("MockerCore keeps its limits and ends every request exactly once under random load", () => {
  fc.assert(
    fc.property(optionsArb, fc.array(commandArb, { minLength: 20, maxLength: 80 }), runScenario),
    { numRuns: 150, seed: 20240601 },
  );
});
