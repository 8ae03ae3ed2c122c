import { z } from "zod";

export const ENGINE_KINDS = ["mocker", "vllm", "sglang", "trtllm"] as const;
export type EngineKind = typeof ENGINE_KINDS[number];

export const WORKER_ROLES = ["agg", "prefill", "decode"] as const;
export type WorkerRole = typeof WORKER_ROLES[number];

/** Dynamo's ModelType bit flags. */
export const MODEL_TYPE = { chat: 1, completions: 2, prefill: 16 } as const;

/**
 * What a worker registers once its engine is ready: everything a frontend needs to
 * preprocess requests for the model and to route them. Field names follow Dynamo's
 * ModelDeploymentCard where one exists.
 */
export const ModelCardSchema = z.object({
  /** The served model name clients ask for. */
  display_name: z.string().min(1),
  /** Where the model came from (a hub id or a directory); informational. */
  source_path: z.string(),
  /** Directory holding `tokenizer.json` (and usually `tokenizer_config.json`). */
  tokenizer_dir: z.string().min(1),
  /** `tokenizer_config.json` holding `chat_template`, or null when the model has none. */
  chat_template_file: z.string().nullable(),
  context_length: z.number().int().positive(),
  kv_cache_block_size: z.number().int().positive(),
  /** Bit flags: chat=1, completions=2, prefill=16. */
  model_type: z.number().int().nonnegative(),
  engine: z.enum(ENGINE_KINDS),
  role: z.enum(WORKER_ROLES),
  eos_token_ids: z.array(z.number().int().nonnegative()),
  runtime_config: z.object({
    total_kv_blocks: z.number().int().nonnegative(),
    max_num_seqs: z.number().int().positive(),
    max_num_batched_tokens: z.number().int().positive(),
    data_parallel_size: z.number().int().positive(),
  }),
});

export type ModelCard = z.infer<typeof ModelCardSchema>;
