/**
 * The mocker's performance model (Dynamo `lib/mocker/src/common/perf_model.rs`, polynomial
 * variant): how long one scheduler pass takes on the simulated GPU. Pure functions of the
 * pass's shape; all times in milliseconds.
 */

/** Predicts the unscaled duration of the two parts of a pass; swappable for profiled models. */
export interface PerfModel {
  /**
   * Prefill time of a pass. `meanIslTokens` and `meanPrefixTokens` are integer means over
   * the `batchCount` requests that computed prompt tokens in the pass.
   */
  prefillMs(batchCount: number, meanIslTokens: number, meanPrefixTokens: number): number;
  /** Decode time of a pass in which at least one request decodes. */
  decodeMs(activeKvBlocks: number, totalKvBlocks: number): number;
}

/** Prefill ms for `x = batchCount * (meanIsl - meanPrefix)` new prompt tokens; 0 when none. */
export function prefillTimeMs(
  batchCount: number,
  meanIslTokens: number,
  meanPrefixTokens: number,
): number {
  if (batchCount <= 0) return 0;
  const x = batchCount * (meanIslTokens - meanPrefixTokens);
  return Math.max(0, 4.209989e-07 * x * x + 1.518344e-02 * x + 16.50142);
}

/** Decode ms at KV utilisation `p = activeKvBlocks / totalKvBlocks`, floored at 1 ms. */
export function decodeTimeMs(activeKvBlocks: number, totalKvBlocks: number): number {
  const p = totalKvBlocks > 0 ? activeKvBlocks / totalKvBlocks : 0;
  return Math.max(1.0, -25.74 * p * p + 54.01 * p + 5.74);
}

/** Dynamo's default polynomial model. */
export const polynomialPerfModel: PerfModel = {
  prefillMs: prefillTimeMs,
  decodeMs: decodeTimeMs,
};

/** Speedup factors that divide the model's times; both must be > 0. */
export interface SpeedupRatios {
  readonly speedupRatio: number;
  readonly decodeSpeedupRatio: number;
}

/**
 * Wall time of a pass: `prefillMs / speedup + decodeMs / (speedup * decodeSpeedup)`.
 * Throws a RangeError for a speedup that is not > 0 (Dynamo would silently run unscaled).
 */
export function passDurationMs(
  prefillMs: number,
  decodeMs: number,
  ratios: SpeedupRatios,
): number {
  const { speedupRatio, decodeSpeedupRatio } = ratios;
  if (!(speedupRatio > 0) || !(decodeSpeedupRatio > 0)) {
    throw new RangeError(
      `Cannot scale pass time: speedup ratios must be > 0 (got ${speedupRatio}, ${decodeSpeedupRatio})`,
    );
  }
  return prefillMs / speedupRatio + decodeMs / (speedupRatio * decodeSpeedupRatio);
}
