import type { Rng } from "../util/mod.ts";
import { RandomSelector } from "./random_selector.ts";
import { RoundRobinSelector } from "./round_robin_selector.ts";
import type { RouterMode, WorkerSelector } from "./selector.ts";

/** Builds the selector for a router mode; one selector per served model. */
export function createSelector(mode: RouterMode, options: { rng: Rng }): WorkerSelector {
  switch (mode) {
    case "round-robin":
      return new RoundRobinSelector();
    case "random":
      return new RandomSelector(options.rng);
  }
}
