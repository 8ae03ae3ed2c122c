import { z } from "zod";
import { DynamoError } from "../../errors/mod.ts";

/**
 * The mocker's settings, with Dynamo's defaults (`MockEngineArgs`, dynamo-facts §4.1).
 * The CLI maps its flags onto these names.
 */
export const MockerOptionsSchema = z.object({
  /** KV cache capacity in blocks (`--num-gpu-blocks-override`). */
  numGpuBlocks: z.number().int().min(1).max(1 << 24).default(16384),
  /** Tokens per KV block (`--block-size`). */
  blockSizeTokens: z.number().int().min(1).max(4096).default(64),
  /** Most requests running at once (`--max-num-seqs`). */
  maxNumSeqs: z.number().int().min(1).max(1 << 16).default(256),
  /** Token budget of one scheduler pass (`--max-num-batched-tokens`). */
  maxNumBatchedTokens: z.number().int().min(1).max(1 << 24).default(8192),
  enablePrefixCaching: z.boolean().default(true),
  enableChunkedPrefill: z.boolean().default(true),
  /** Which running request gives up its blocks under KV pressure: newest (lifo) or oldest. */
  preemptionMode: z.enum(["lifo", "fifo"]).default("lifo"),
  /** Divides all simulated time (`--speedup-ratio`); must be > 0. */
  speedupRatio: z.number().positive().max(1e9).default(1),
  /** Further divides decode time (`--decode-speedup-ratio`); must be > 0. */
  decodeSpeedupRatio: z.number().positive().max(1e9).default(1),
  /** Longest sequence (prompt + output) a request may reach. */
  contextLengthTokens: z.number().int().min(1).max(1 << 24).default(40960),
  /** Mean natural output length (geometric) when EOS is not ignored. */
  meanOutputTokens: z.number().min(1).max(1e9).default(128),
  /** Seeds the output of requests that bring neither a seed nor temperature 0. */
  seed: z.number().int().default(0),
  /** How long `start()` takes (`--startup-time`, in ms here). */
  startupTimeMs: z.number().min(0).max(3_600_000).default(0),
  /** Most requests queued (waiting) at once; more are refused as overloaded. */
  maxWaitingRequests: z.number().int().min(1).max(1 << 20).default(4096),
}).strict();

/** Resolved mocker settings: every field present. */
export type MockerOptions = Readonly<z.output<typeof MockerOptionsSchema>>;
/** Mocker settings as given: every field optional. */
export type MockerOptionsInput = z.input<typeof MockerOptionsSchema>;

/**
 * Validates and fills in defaults, returning a frozen object. A bad value throws an
 * `invalid_request` DynamoError naming the field, the value and what is allowed.
 */
export function resolveMockerOptions(input: MockerOptionsInput = {}): MockerOptions {
  const parsed = MockerOptionsSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.join(".") || "(options)";
    const value = issue.path.length > 0
      ? (input as Record<string, unknown>)[String(issue.path[0])]
      : input;
    throw new DynamoError(
      "invalid_request",
      "invalid_mocker_option",
      `Cannot configure mocker: ${field} = ${
        JSON.stringify(value)
      } is not allowed (${issue.message})`,
      { param: field },
    );
  }
  return Object.freeze(parsed.data);
}
