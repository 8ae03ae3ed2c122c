import { parse as parseYaml } from "yaml";
import { z } from "zod";
import {
  argvError,
  boolArg,
  type FlagKind,
  intArg,
  numberArg,
  parseEngineArgv,
  stringArg,
} from "../stand_in/mod.ts";

const ENGINE = "trtllm-serve";

/** `KVEventsConfig` under `kv_cache_config` (TensorRT-LLM's ZMQ KV event publisher). */
const KvEventsConfigSchema = z.looseObject({
  enable_kv_cache_events: z.boolean().optional(),
  publisher: z.string().optional(),
  endpoint: z.string().optional(),
  replay_endpoint: z.string().nullish(),
  topic: z.string().optional(),
});

/**
 * The LLM API options the stand-in models (`tensorrt_llm/llmapi/llm_args.py`): what an
 * `--extra_llm_api_options` YAML file may set. Other keys are accepted and ignored.
 */
const LlmApiOptionsSchema = z.looseObject({
  max_batch_size: z.number().int().min(1).optional(),
  max_num_tokens: z.number().int().min(1).optional(),
  max_seq_len: z.number().int().min(1).optional(),
  enable_chunked_prefill: z.boolean().optional(),
  enable_iter_perf_stats: z.boolean().optional(),
  return_perf_metrics: z.boolean().optional(),
  kv_cache_config: z.looseObject({
    enable_block_reuse: z.boolean().optional(),
    tokens_per_block: z.number().int().min(1).optional(),
    max_tokens: z.number().int().min(1).optional(),
    free_gpu_memory_fraction: z.number().gt(0).max(1).optional(),
    event_buffer_max_size: z.number().int().min(0).optional(),
    kv_events_config: KvEventsConfigSchema.optional(),
  }).optional(),
});

/** TensorRT-LLM's ZMQ KV event publisher settings, resolved. */
export interface TrtllmKvEvents {
  readonly endpoint: string;
  readonly topic: string;
}

/** A `trtllm-serve` command line plus its LLM API options, as far as the stand-in models them. */
export interface TrtllmServeArgs {
  readonly model: string;
  readonly tokenizer: string | undefined;
  readonly host: string;
  readonly port: number;
  readonly maxBatchSize: number;
  readonly maxNumTokens: number;
  readonly maxSeqLen: number | undefined;
  readonly enableChunkedPrefill: boolean;
  readonly enableBlockReuse: boolean;
  readonly tokensPerBlock: number;
  readonly kvCacheMaxTokens: number | undefined;
  readonly enableIterPerfStats: boolean;
  readonly returnPerfMetrics: boolean;
  /** Where KV events are published, when `kv_events_config` enables them. */
  readonly kvEvents: TrtllmKvEvents | undefined;
  /** Flags and options the stand-in accepted without modelling them. */
  readonly ignored: readonly string[];
}

/** The flags the stand-in models, with `trtllm-serve`'s names (`tensorrt_llm/commands/serve.py`). */
const FLAGS: Readonly<Record<string, readonly [string, FlagKind]>> = {
  "--tokenizer": ["--tokenizer", "string"],
  "--host": ["--host", "string"],
  "--port": ["--port", "int"],
  "--backend": ["--backend", "string"],
  "--max_batch_size": ["--max_batch_size", "int"],
  "--max_num_tokens": ["--max_num_tokens", "int"],
  "--max_seq_len": ["--max_seq_len", "int"],
  "--free_gpu_memory_fraction": ["--free_gpu_memory_fraction", "number"],
  "--kv_cache_free_gpu_memory_fraction": ["--free_gpu_memory_fraction", "number"],
  "--extra_llm_api_options": ["--extra_llm_api_options", "string"],
  "--config": ["--extra_llm_api_options", "string"],
  "--enable_chunked_prefill": ["--enable_chunked_prefill", "bool"],
};

/** `trtllm-serve`'s is_flag options the stand-in ignores (they never take a value). */
const IGNORED_BOOLEANS = new Set([
  "--trust_remote_code",
  "--fail_fast_on_attention_window_too_large",
]);

/** `BuildConfig`'s defaults, which `trtllm-serve` passes on. */
const DEFAULT_MAX_BATCH_SIZE = 2048;
const DEFAULT_MAX_NUM_TOKENS = 8192;
const DEFAULT_TOKENS_PER_BLOCK = 32;

/**
 * Parses `[serve] MODEL [flags]` as `trtllm-serve` reads it (click; `serve` is its default
 * command) and the `--extra_llm_api_options` YAML file it names, whose keys override the
 * flags (`update_llm_args_with_extra_dict`). Flags and keys it does not model are accepted
 * and listed in `ignored`. A bad value is an `invalid_request` error naming it.
 */
export async function parseTrtllmServeArgs(argv: readonly string[]): Promise<TrtllmServeArgs> {
  const rest = argv[0] === "serve" ? argv.slice(1) : [...argv];
  const parsed = parseEngineArgv(rest, {
    engine: ENGINE,
    flags: FLAGS,
    ignoredBooleans: IGNORED_BOOLEANS,
  });
  if (parsed.positionals.length !== 1) {
    throw argvError(
      ENGINE,
      parsed.positionals.length === 0
        ? "Missing argument 'MODEL'"
        : `Got unexpected extra argument (${parsed.positionals[1]})`,
    );
  }
  const backend = stringArg(parsed, "--backend") ?? "pytorch";
  if (!["pytorch", "tensorrt", "trt", "_autodeploy"].includes(backend)) {
    throw argvError(ENGINE, `Invalid value for '--backend': '${backend}'`);
  }
  const file = stringArg(parsed, "--extra_llm_api_options");
  const options = file === undefined ? {} : await readOptions(file);
  const kv = options.kv_cache_config ?? {};
  numberArg(parsed, ENGINE, "--free_gpu_memory_fraction", 1);
  const ignored = [...parsed.ignored];
  const events = kv.kv_events_config;
  const eventsOn = events !== undefined && events.enable_kv_cache_events === true &&
    (events.publisher ?? "zmq") === "zmq";
  if (events?.replay_endpoint) ignored.push("kv_events_config.replay_endpoint");
  return {
    model: parsed.positionals[0]!,
    tokenizer: stringArg(parsed, "--tokenizer"),
    host: stringArg(parsed, "--host") ?? "localhost",
    port: intArg(parsed, ENGINE, "--port", 0, 65535) ?? 8000,
    maxBatchSize: options.max_batch_size ??
      intArg(parsed, ENGINE, "--max_batch_size", 1) ?? DEFAULT_MAX_BATCH_SIZE,
    maxNumTokens: options.max_num_tokens ??
      intArg(parsed, ENGINE, "--max_num_tokens", 1) ?? DEFAULT_MAX_NUM_TOKENS,
    maxSeqLen: options.max_seq_len ?? intArg(parsed, ENGINE, "--max_seq_len", 1),
    enableChunkedPrefill: options.enable_chunked_prefill ??
      boolArg(parsed, "--enable_chunked_prefill", false),
    enableBlockReuse: kv.enable_block_reuse ?? true,
    tokensPerBlock: kv.tokens_per_block ?? DEFAULT_TOKENS_PER_BLOCK,
    kvCacheMaxTokens: kv.max_tokens,
    enableIterPerfStats: options.enable_iter_perf_stats ?? false,
    returnPerfMetrics: options.return_perf_metrics ?? false,
    kvEvents: eventsOn
      ? { endpoint: events.endpoint ?? "tcp://*:5557", topic: events.topic ?? "" }
      : undefined,
    ignored,
  };
}

async function readOptions(file: string): Promise<z.infer<typeof LlmApiOptionsSchema>> {
  let raw: unknown;
  try {
    raw = parseYaml(await Deno.readTextFile(file));
  } catch (err) {
    throw argvError(
      ENGINE,
      `cannot read --extra_llm_api_options ${file}: ${err instanceof Error ? err.message : err}`,
    );
  }
  const parsed = LlmApiOptionsSchema.safeParse(raw ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw argvError(
      ENGINE,
      `invalid LLM API option ${issue.path.join(".") || "(file)"} in ${file}: ${issue.message}`,
    );
  }
  return parsed.data;
}
