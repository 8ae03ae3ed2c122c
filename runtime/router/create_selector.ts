import { DynamoError } from "../errors/mod.ts";
import type { ModelCard, WorkerLoad } from "../protocol/mod.ts";
import type { Clock, Rng } from "../util/mod.ts";
import type { KvRoutingState } from "./kv_routing_state.ts";
import { KvSelector } from "./kv_selector.ts";
import { RandomSelector } from "./random_selector.ts";
import { RoundRobinSelector } from "./round_robin_selector.ts";
import type { RouterMode, WorkerSelector } from "./selector.ts";

/** What the KV-aware policy needs besides the model's card. */
export interface KvSelectorDeps {
  readonly state: KvRoutingState;
  readonly clock: Clock;
  readonly loadOf?: (instanceId: number) => WorkerLoad | undefined;
}

/** Builds the selector for a router mode; one selector per served model. */
export function createSelector(
  mode: RouterMode,
  options: { rng: Rng; card?: ModelCard; kv?: KvSelectorDeps },
): WorkerSelector {
  switch (mode) {
    case "round-robin":
      return new RoundRobinSelector();
    case "random":
      return new RandomSelector(options.rng);
    case "kv": {
      if (options.kv === undefined || options.card === undefined) {
        throw new DynamoError(
          "internal",
          "kv_router_unconfigured",
          "KV routing needs its state and the model card",
        );
      }
      return new KvSelector(options.kv.state, {
        blockSizeTokens: options.card.kv_cache_block_size,
        clock: options.kv.clock,
        loadOf: options.kv.loadOf,
      });
    }
  }
}
