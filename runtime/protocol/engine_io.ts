import { z } from "zod";

/**
 * What the frontend sends a worker on the request plane: a preprocessed (tokenized)
 * request. Field names follow Dynamo's PreprocessedRequest.
 */
export const EngineRequestSchema = z.object({
  request_id: z.string().min(1),
  model: z.string(),
  token_ids: z.array(z.number().int().nonnegative()),
  stop_conditions: z.object({
    max_tokens: z.number().int().nonnegative(),
    min_tokens: z.number().int().nonnegative(),
    ignore_eos: z.boolean(),
    /** Extra token ids that end generation (besides the model's EOS unless ignore_eos). */
    stop_token_ids: z.array(z.number().int().nonnegative()),
  }),
  sampling_options: z.object({
    temperature: z.number().nullable(),
    top_p: z.number().nullable(),
    top_k: z.number().int().nullable(),
    seed: z.number().int().nullable(),
  }),
  eos_token_ids: z.array(z.number().int().nonnegative()),
  /** Set by a later disaggregation stage; opaque to the frontend. */
  prefill_result: z.unknown().optional(),
  /** Routing hints; the router reads them, engines ignore them. */
  routing: z.object({
    backend_instance_id: z.number().int().optional(),
  }).optional(),
  /** Per-request router settings (Dynamo's RouterConfigOverride). */
  router_config_override: z.object({
    overlap_score_weight: z.number().min(0).optional(),
    router_temperature: z.number().min(0).optional(),
  }).optional(),
});
export type EngineRequest = z.infer<typeof EngineRequestSchema>;

export const FINISH_REASONS = ["stop", "length", "cancelled", "error"] as const;
export type FinishReason = typeof FINISH_REASONS[number];

export interface CompletionUsage {
  readonly prompt_tokens: number;
  readonly completion_tokens: number;
  readonly prompt_tokens_details?: { readonly cached_tokens: number };
}

/**
 * One item of a worker's response stream: the token ids produced since the last item.
 * The last item carries `finish_reason` and `completion_usage`.
 */
export interface EngineOutput {
  readonly token_ids: readonly number[];
  readonly finish_reason?: FinishReason;
  readonly completion_usage?: CompletionUsage;
  /** Engine-specific parameters for a disaggregated decode step (later issues). */
  readonly disaggregated_params?: unknown;
}

/**
 * A worker's load, published on the event plane (topic `kv_metrics`, namespace scope).
 * The first three fields match Dynamo's ActiveLoad.
 */
export interface WorkerLoad {
  readonly worker_id: number;
  readonly dp_rank: number;
  readonly active_decode_blocks: number;
  readonly active_prefill_tokens: number;
  readonly kv_used_blocks: number;
  readonly kv_total_blocks: number;
  readonly num_requests_running: number;
  readonly num_requests_waiting: number;
}
