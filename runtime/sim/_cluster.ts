import { type MockerOptions, resolveMockerOptions } from "../engines/mod.ts";
import { Registry } from "../observability/mod.ts";
import type { ModelCard } from "../protocol/mod.ts";
import {
  createSelector,
  KvRoutingState,
  KvSelector,
  RouterMetrics,
  type WorkerCandidate,
  type WorkerSelector,
} from "../router/mod.ts";
import { type Clock, SeededRng, seedFrom } from "../util/mod.ts";
import { EngineSlot } from "./_engine_slot.ts";
import { MAX_SIM_WORKERS, type SimConfig } from "./sim_config.ts";
import { SIM_EOS_TOKEN_ID } from "./sim_vocabulary.ts";

/** The simulated cluster: its engines and the router in front of them. Private to sim/. */
export interface Cluster {
  /** Engine `i` has instance id `i + 1`. */
  readonly slots: readonly EngineSlot[];
  readonly candidates: readonly WorkerCandidate[];
  readonly selector: WorkerSelector;
  /** The KV router's state (kv mode). */
  readonly kvState: KvRoutingState | undefined;
  readonly options: MockerOptions;
}

/**
 * Builds the engines and the router exactly as the live roles do, except for what time
 * means: the router reads the virtual `clock`, and its overhead stopwatch reads 0.
 */
export function buildCluster(config: SimConfig, clock: Clock): Cluster {
  if (!Number.isInteger(config.workers) || config.workers < 1) {
    throw new RangeError(`Cannot simulate ${config.workers} workers`);
  }
  if (config.workers > MAX_SIM_WORKERS) {
    throw new RangeError(`Cannot simulate more than ${MAX_SIM_WORKERS} workers`);
  }
  const options = resolveMockerOptions(config.engine);
  const width = config.workers >= 10 ? String(config.workers).length : 1;
  const slots = Array.from(
    { length: config.workers },
    (_, i) =>
      new EngineSlot(i + 1, `worker-${String(i + 1).padStart(width, "0")}`, {
        ...config.engine,
        seed: seedFrom(`${config.seed}/engine/${i + 1}`) | 0,
      }),
  );
  const card = simCard(options);
  const candidates = slots.map((s) => ({ instanceId: s.instanceId, card }));
  if (config.routerMode !== "kv") {
    const selector = createSelector(config.routerMode, { rng: new SeededRng(config.seed) });
    return { slots, candidates, selector, kvState: undefined, options };
  }
  const kvState = new KvRoutingState(
    { ...config.kvRouter, seed: config.seed },
    new RouterMetrics(new Registry(), "sim"),
  );
  const selector = new KvSelector(kvState, {
    blockSizeTokens: options.blockSizeTokens,
    clock,
    // Live routers see load the workers published a moment ago; here it is exact.
    loadOf: (id) => slots[id - 1]?.load(),
    stopwatch: () => 0,
  });
  return { slots, candidates, selector, kvState, options };
}

/** The model card every simulated worker registers (what the router reads of a worker). */
function simCard(o: MockerOptions): ModelCard {
  return {
    display_name: "sim",
    source_path: "sim",
    tokenizer_dir: "sim",
    chat_template_file: null,
    context_length: o.contextLengthTokens,
    kv_cache_block_size: o.blockSizeTokens,
    model_type: 3,
    engine: "mocker",
    role: "agg",
    eos_token_ids: [SIM_EOS_TOKEN_ID],
    runtime_config: {
      total_kv_blocks: o.numGpuBlocks,
      max_num_seqs: o.maxNumSeqs,
      max_num_batched_tokens: o.maxNumBatchedTokens,
      data_parallel_size: 1,
    },
  };
}
