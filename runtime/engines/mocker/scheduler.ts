import type { CompletionUsage, FinishReason } from "../../protocol/mod.ts";
import { Deque } from "./_deque.ts";
import type { KvManager } from "./kv_manager.ts";
import type { MockerRequest } from "./mocker_request.ts";

/** One request's output of one pass (or of a cancellation). */
export interface MockerOutput {
  readonly requestId: string;
  /** Tokens produced this pass (at most one for the vLLM-style scheduler). */
  readonly tokenIds: readonly number[];
  /** Set on the request's last output. */
  readonly finishReason?: FinishReason;
  /** Set on the request's first and last outputs (cumulative at that point). */
  readonly usage?: CompletionUsage;
}

export interface SchedulerConfig {
  readonly blockSizeTokens: number;
  readonly maxNumSeqs: number;
  readonly maxNumBatchedTokens: number;
  readonly enableChunkedPrefill: boolean;
  readonly preemptionMode: "lifo" | "fifo";
}

/** The shape of the pass just scheduled; what the perf model needs. */
export interface ScheduledPass {
  /** Tokens computed this pass (prefill chunks plus one per decoding request). */
  scheduledTokens: number;
  /** Requests that computed prompt tokens this pass (`batch_count`). */
  prefillRequests: number;
  /** Sum over those requests of the prompt tokens computed after the pass. */
  totalIslTokens: number;
  /** Sum over those requests of the prompt tokens computed before the pass. */
  totalPrefixTokens: number;
  /** Requests that will emit a token this pass. */
  decodeRequests: number;
  /** Ids of the requests preempted this pass, in order. */
  preemptedRequestIds: string[];
}

type Outcome = "scheduled" | "blocked" | "preempted_self" | "finished";

const NO_TOKENS: readonly number[] = Object.freeze([]);

/**
 * The vLLM v1-style continuous-batching scheduler of Dynamo's mocker (§4.3): running
 * requests first, then FIFO admission, chunked prefill, prefix reuse at admission, and
 * recompute preemption under KV pressure.
 */
export class VllmScheduler {
  readonly #cfg: SchedulerConfig;
  readonly #kv: KvManager;
  readonly #requests = new Map<string, MockerRequest>();
  readonly #waiting = new Deque<MockerRequest>();
  #running: MockerRequest[] = [];
  #cursor = 0;
  #passId = 0;
  #budget = 0;
  #preemptedAny = false;
  #pendingPrefillTokens = 0;
  #preemptionsTotal = 0;
  #pass: ScheduledPass = emptyPass();

  constructor(config: SchedulerConfig, kv: KvManager) {
    this.#cfg = config;
    this.#kv = kv;
  }

  get size(): number {
    return this.#requests.size;
  }

  get numRunning(): number {
    return this.#running.length;
  }

  get numWaiting(): number {
    return this.#waiting.length;
  }

  /** Prompt tokens (and, after preemption, output tokens) not yet computed, over all requests. */
  get pendingPrefillTokens(): number {
    return this.#pendingPrefillTokens;
  }

  get preemptionsTotal(): number {
    return this.#preemptionsTotal;
  }

  has(requestId: string): boolean {
    return this.#requests.has(requestId);
  }

  /** Queues a new request at the back of `waiting`. */
  add(request: MockerRequest): void {
    this.#requests.set(request.id, request);
    this.#waiting.pushBack(request);
    this.#pendingPrefillTokens += request.pendingPrefillTokens;
  }

  /** Removes a request wherever it is, freeing its blocks; returns its final output. */
  cancel(requestId: string): MockerOutput | undefined {
    const r = this.#requests.get(requestId);
    if (r === undefined) return undefined;
    if (r.state === "running") this.#running.splice(this.#running.indexOf(r), 1);
    else this.#waiting.remove(r);
    return this.#finish(r, "cancelled", NO_TOKENS);
  }

  /** Ids of all requests, running first; for resets and tests. */
  requestIds(): string[] {
    return [...this.#running.map((r) => r.id), ...[...this.#waiting].map((r) => r.id)];
  }

  /**
   * Schedules one pass: allocates KV and advances `computedTokens` of the scheduled
   * requests. Requests that can never fit finish here (pushed to `outputs`).
   */
  schedule(outputs: MockerOutput[]): ScheduledPass {
    this.#passId++;
    this.#pass = emptyPass();
    this.#budget = this.#cfg.maxNumBatchedTokens;
    this.#preemptedAny = false;
    this.#cursor = 0;
    while (this.#cursor < this.#running.length && this.#budget > 0) {
      const r = this.#running[this.#cursor]!;
      const outcome = this.#scheduleOne(r, false, outputs);
      if (outcome === "scheduled") this.#cursor++;
      else if (outcome === "blocked") break;
    }
    while (
      !this.#preemptedAny && this.#running.length < this.#cfg.maxNumSeqs &&
      this.#waiting.length > 0
    ) {
      const r = this.#waiting.peekFront()!;
      const budgetBefore = this.#budget;
      const outcome = this.#scheduleOne(r, true, outputs);
      if (outcome === "blocked") break;
      if (outcome === "scheduled" && budgetBefore === 0) break;
    }
    let ready = 0;
    for (const r of this.#running) {
      if (r.computedTokens >= r.length && !r.outputExhausted) ready++;
    }
    this.#pass.decodeRequests = ready;
    return this.#pass;
  }

  /**
   * Samples one token for every request whose sequence is fully computed, finishing those
   * that stop; requests whose output was already exhausted (max_tokens 0) finish tokenless.
   */
  emitTokens(outputs: MockerOutput[]): void {
    let finished = false;
    for (const r of this.#running) {
      if (r.computedTokens < r.length) continue;
      if (r.outputExhausted) {
        outputs.push(this.#finish(r, "length", NO_TOKENS));
        finished = true;
        continue;
      }
      const token = r.generator.next();
      const reason = r.appendToken(token);
      if (reason === undefined) {
        // The first token carries usage too, so a client that stops early (a stop string)
        // still learns how many prompt tokens were served from the prefix cache.
        const first = r.generatedTokens === 1;
        outputs.push(
          first ? { requestId: r.id, tokenIds: [token], usage: r.usage() } : {
            requestId: r.id,
            tokenIds: [token],
          },
        );
      } else {
        outputs.push(this.#finish(r, reason, [token]));
        finished = true;
      }
    }
    if (finished) this.#running = this.#running.filter((r) => r.state === "running");
  }

  /** Calls `check` on every live request (tests use it to verify invariants). */
  forEachRequest(check: (request: MockerRequest) => void): void {
    for (const r of this.#requests.values()) check(r);
  }

  #scheduleOne(r: MockerRequest, fromWaiting: boolean, outputs: MockerOutput[]): Outcome {
    const bs = this.#cfg.blockSizeTokens;
    for (;;) {
      const cached = r.computedTokens === 0 ? this.#cachedPrefixTokens(r) : 0;
      const before = r.computedTokens + cached;
      const remaining = r.length - before;
      const promptRemaining = r.promptTokens - Math.min(before, r.promptTokens);
      if (
        promptRemaining > 0 && !this.#cfg.enableChunkedPrefill && promptRemaining > this.#budget
      ) return "blocked";
      const desired = Math.min(remaining, this.#budget);
      if (desired === 0 && remaining > 0) return "blocked";
      const target = before + desired;
      if (this.#kv.grow(r.blocks, Math.ceil(target / bs), Math.floor(target / bs), r)) {
        this.#commit(r, fromWaiting, cached, before, target);
        return "scheduled";
      }
      // Like vLLM v1, admission never preempts: a waiting request waits for room, unless
      // nothing is running, in which case it can never fit.
      const alone = fromWaiting ? this.#running.length === 0 : this.#running.length === 1;
      if (alone) {
        this.#removeFromQueue(r);
        outputs.push(this.#finish(r, "length", NO_TOKENS));
        return "finished";
      }
      if (fromWaiting) return "blocked";
      const victim = this.#preemptionVictim();
      this.#preempt(victim);
      if (victim === r) return "preempted_self";
    }
  }

  /** Tokens reusable from the prefix cache; never the whole sequence (the last block is recomputed). */
  #cachedPrefixTokens(r: MockerRequest): number {
    const bs = this.#cfg.blockSizeTokens;
    const maxBlocks = r.length > 0 ? Math.floor((r.length - 1) / bs) : 0;
    return this.#kv.cachedPrefixBlocks(r, maxBlocks) * bs;
  }

  #commit(
    r: MockerRequest,
    fromWaiting: boolean,
    cached: number,
    before: number,
    target: number,
  ): void {
    const pending = r.pendingPrefillTokens;
    r.computedTokens = target;
    this.#pendingPrefillTokens += r.pendingPrefillTokens - pending;
    const tokens = target - before;
    const prefillEnd = r.prefillEndTokens;
    const prefixBefore = Math.min(before, prefillEnd);
    const islAfter = Math.min(target, prefillEnd);
    r.passId = this.#passId;
    r.passTokens = tokens;
    r.passPrefill = islAfter > prefixBefore;
    r.passIslTokens = islAfter;
    r.passPrefixTokens = prefixBefore;
    const pass = this.#pass;
    if (r.passPrefill) {
      pass.prefillRequests++;
      pass.totalIslTokens += islAfter;
      pass.totalPrefixTokens += prefixBefore;
    }
    pass.scheduledTokens += tokens;
    this.#budget -= tokens;
    if (!fromWaiting) return;
    this.#waiting.shift();
    this.#running.push(r);
    r.state = "running";
    if (r.cachedTokens < 0) r.cachedTokens = Math.min(cached, r.promptTokens);
  }

  #preemptionVictim(): MockerRequest {
    const running = this.#running;
    return this.#cfg.preemptionMode === "lifo" ? running[running.length - 1]! : running[0]!;
  }

  /** Recompute preemption: drop the victim's blocks and requeue it at the front of waiting. */
  #preempt(victim: MockerRequest): void {
    this.#removeFromQueue(victim);
    if (victim.passId === this.#passId) {
      const pass = this.#pass;
      this.#budget += victim.passTokens;
      pass.scheduledTokens -= victim.passTokens;
      if (victim.passPrefill) {
        pass.prefillRequests--;
        pass.totalIslTokens -= victim.passIslTokens;
        pass.totalPrefixTokens -= victim.passPrefixTokens;
      }
      victim.passId = -1;
    }
    this.#kv.destroy(victim.blocks);
    const pending = victim.pendingPrefillTokens;
    victim.computedTokens = 0;
    victim.prefillEndTokens = victim.length;
    this.#pendingPrefillTokens += victim.pendingPrefillTokens - pending;
    victim.state = "waiting";
    this.#waiting.pushFront(victim);
    this.#preemptedAny = true;
    this.#preemptionsTotal++;
    this.#pass.preemptedRequestIds.push(victim.id);
  }

  /** Takes a request out of `running` (keeping the scan cursor right) or out of `waiting`. */
  #removeFromQueue(r: MockerRequest): void {
    if (r.state !== "running") {
      this.#waiting.remove(r);
      return;
    }
    const running = this.#running;
    const index = running[running.length - 1] === r ? running.length - 1 : running.indexOf(r);
    running.splice(index, 1);
    if (index < this.#cursor) this.#cursor--;
  }

  #finish(r: MockerRequest, reason: FinishReason, tokenIds: readonly number[]): MockerOutput {
    this.#pendingPrefillTokens -= r.pendingPrefillTokens;
    this.#kv.release(r.blocks);
    r.state = "done";
    this.#requests.delete(r.id);
    return { requestId: r.id, tokenIds, finishReason: reason, usage: r.usage() };
  }
}

function emptyPass(): ScheduledPass {
  return {
    scheduledTokens: 0,
    prefillRequests: 0,
    totalIslTokens: 0,
    totalPrefixTokens: 0,
    decodeRequests: 0,
    preemptedRequestIds: [],
  };
}
