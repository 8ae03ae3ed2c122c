import { DynamoError } from "../errors/mod.ts";
import { IncrementalDetokenizer, type ModelTokenizer, StopMatcher } from "../llm/mod.ts";
import type { EngineOutput } from "../protocol/mod.ts";

/** OpenAI's finish reasons that this frontend produces. */
export type OpenAIFinishReason = "stop" | "length";

export interface Usage {
  readonly prompt_tokens: number;
  readonly completion_tokens: number;
  readonly total_tokens: number;
  readonly prompt_tokens_details: { readonly cached_tokens: number };
}

/** One step of a response: text that became final, and how many tokens produced it. */
export type OutputEvent =
  | { readonly kind: "text"; readonly text: string; readonly tokens: number }
  | { readonly kind: "end"; readonly finishReason: OpenAIFinishReason; readonly usage: Usage };

/**
 * Turns a worker's token-id stream into text: incremental detokenization, stop strings
 * (output ends right before one, and the worker is cancelled), and usage with true token
 * counts. Ending iteration early (a stop string) returns the upstream iterator, which
 * cancels the request on the worker.
 */
export async function* processOutputs(
  outputs: AsyncIterable<EngineOutput>,
  options: { tokenizer: ModelTokenizer; stops: readonly string[]; promptTokens: number },
): AsyncGenerator<OutputEvent> {
  const detok = new IncrementalDetokenizer(options.tokenizer);
  const stop = new StopMatcher(options.stops);
  let completionTokens = 0;
  let cachedTokens = 0;
  const usage = (): Usage => ({
    prompt_tokens: options.promptTokens,
    completion_tokens: completionTokens,
    total_tokens: options.promptTokens + completionTokens,
    prompt_tokens_details: { cached_tokens: cachedTokens },
  });
  for await (const out of outputs) {
    const cached = out.completion_usage?.prompt_tokens_details?.cached_tokens;
    if (cached !== undefined) cachedTokens = cached;
    completionTokens += out.token_ids.length;
    const matched = stop.push(detok.push(out.token_ids));
    if (matched.text !== "" || out.token_ids.length > 0) {
      yield { kind: "text", text: matched.text, tokens: out.token_ids.length };
    }
    if (matched.stopped) {
      yield { kind: "end", finishReason: "stop", usage: usage() };
      return;
    }
    if (out.finish_reason !== undefined) {
      const tail = stop.push(detok.flush());
      const rest = tail.stopped ? tail.text : tail.text + stop.flush();
      if (rest !== "") yield { kind: "text", text: rest, tokens: 0 };
      yield { kind: "end", finishReason: toOpenAIFinish(out.finish_reason), usage: usage() };
      return;
    }
  }
  throw new DynamoError(
    "engine_error",
    "stream_incomplete",
    "Worker ended the response stream without a finish reason",
  );
}

function toOpenAIFinish(reason: EngineOutput["finish_reason"]): OpenAIFinishReason {
  switch (reason) {
    case "stop":
      return "stop";
    case "length":
      return "length";
    case "cancelled":
      throw new DynamoError("unavailable", "cancelled_by_worker", "Worker cancelled the request", {
        retryAfterS: 1,
      });
    default:
      throw new DynamoError(
        "engine_error",
        "engine_failed",
        "Engine failed to generate a response",
      );
  }
}
