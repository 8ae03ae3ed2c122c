import { DynamoError } from "../errors/mod.ts";
import { type Rng, SeededRng } from "../util/mod.ts";
import type { LoadMode, SessionSpec, TurnSpec, Workload } from "./workload.ts";

/** A distribution of token counts. */
export type Distribution =
  | { readonly kind: "fixed"; readonly value: number }
  | { readonly kind: "uniform"; readonly min: number; readonly max: number }
  | { readonly kind: "normal"; readonly mean: number; readonly stddev: number };

/**
 * Parses `N` (fixed), `uniform:MIN:MAX` or `normal:MEAN:STDDEV`; anything else is an
 * invalid_request naming `what` and the value.
 */
export function parseDistribution(text: string, what: string): Distribution {
  const bad = (why: string) =>
    new DynamoError(
      "invalid_request",
      "invalid_distribution",
      `Invalid value for ${what}: "${text}" (${why}; expected N, uniform:MIN:MAX or normal:MEAN:STDDEV)`,
    );
  const parts = text.split(":");
  const nums = parts.slice(parts.length === 1 ? 0 : 1).map(Number);
  if (nums.some((n) => !Number.isFinite(n) || n < 0)) throw bad("not a non-negative number");
  if (parts.length === 1) return { kind: "fixed", value: Math.round(nums[0]!) };
  if (parts[0] === "uniform" && nums.length === 2 && nums[0]! <= nums[1]!) {
    return { kind: "uniform", min: Math.round(nums[0]!), max: Math.round(nums[1]!) };
  }
  if (parts[0] === "normal" && nums.length === 2) {
    return { kind: "normal", mean: nums[0]!, stddev: nums[1]! };
  }
  throw bad("unknown form");
}

/** Draws a whole number ≥ `min` from a distribution. */
export function sample(d: Distribution, rng: Rng, min = 1): number {
  let v: number;
  switch (d.kind) {
    case "fixed":
      v = d.value;
      break;
    case "uniform":
      v = d.min + rng.nextInt(d.max - d.min + 1);
      break;
    case "normal": {
      // Box-Muller; one draw per sample keeps the stream simple and reproducible.
      const u = Math.max(rng.nextFloat(), 1e-12);
      v = d.mean + d.stddev * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.nextFloat());
      break;
    }
  }
  return Math.max(min, Math.round(v));
}

export interface SyntheticSpec {
  /** Sessions to generate. */
  readonly sessions: number;
  /** Prompt length of a session's first turn (shared prefix included). */
  readonly isl: Distribution;
  readonly osl: Distribution;
  /** Fraction of the first turn's prompt that is a prefix shared within its group. */
  readonly sharedPrefixRatio: number;
  /** How many distinct shared prefixes sessions are spread over. */
  readonly prefixGroups: number;
  /** Turns per session; each later turn extends the conversation so far. */
  readonly turns: number;
  /** New tokens of each later turn. */
  readonly turnIsl: Distribution;
  readonly interTurnDelayMs: number;
  /** Open loop at a Poisson rate, or closed loop at a fixed concurrency. */
  readonly arrival:
    | { readonly kind: "poisson"; readonly ratePerS: number }
    | { readonly kind: "closed"; readonly concurrency: number };
  /** Token ids prompts are drawn from. */
  readonly vocabulary: readonly number[];
  readonly seed: number;
}

function tokens(n: number, rng: Rng, vocabulary: readonly number[]): number[] {
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) out[i] = vocabulary[rng.nextInt(vocabulary.length)]!;
  return out;
}

/** Generates a synthetic workload, reproducibly from its seed. */
export function syntheticWorkload(spec: SyntheticSpec, description: string): Workload {
  if (spec.vocabulary.length === 0) {
    throw new DynamoError(
      "invalid_request",
      "empty_vocabulary",
      "Cannot synthesise prompts from an empty vocabulary",
    );
  }
  const rng = new SeededRng(spec.seed);
  const groups = Math.max(1, spec.prefixGroups);
  const meanIsl = spec.isl.kind === "fixed"
    ? spec.isl.value
    : spec.isl.kind === "uniform"
    ? (spec.isl.min + spec.isl.max) / 2
    : spec.isl.mean;
  const prefixLen = Math.round(meanIsl * Math.min(1, Math.max(0, spec.sharedPrefixRatio)));
  const prefixes = Array.from({ length: groups }, () => tokens(prefixLen, rng, spec.vocabulary));
  const sessions: SessionSpec[] = [];
  let t = 0;
  for (let i = 0; i < spec.sessions; i++) {
    if (spec.arrival.kind === "poisson" && i > 0) {
      t += -Math.log(Math.max(rng.nextFloat(), 1e-12)) / spec.arrival.ratePerS * 1000;
    }
    const isl = sample(spec.isl, rng);
    const prefix = prefixes[rng.nextInt(groups)]!.slice(0, Math.min(prefixLen, isl));
    const turns: TurnSpec[] = [{
      newTokens: [...prefix, ...tokens(isl - prefix.length, rng, spec.vocabulary)],
      maxTokens: sample(spec.osl, rng),
      delayMs: 0,
    }];
    for (let k = 1; k < spec.turns; k++) {
      turns.push({
        newTokens: tokens(sample(spec.turnIsl, rng), rng, spec.vocabulary),
        maxTokens: sample(spec.osl, rng),
        delayMs: spec.interTurnDelayMs,
      });
    }
    sessions.push({ id: `s${i}`, arrivalMs: t, turns });
  }
  const mode: LoadMode = spec.arrival.kind === "closed"
    ? { kind: "closed", concurrency: spec.arrival.concurrency }
    : { kind: "open" };
  return { description, sessions, mode };
}
