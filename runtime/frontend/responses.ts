import type { OpenAIFinishReason, Usage } from "./output_processor.ts";
import type { EndpointName } from "./metrics.ts";

/** Identity of one response: shared by all its chunks. */
export interface ResponseIds {
  readonly id: string;
  readonly created: number;
  readonly model: string;
  readonly endpoint: EndpointName;
}

type Nvext = { worker_id: { decode_worker_id: number; prefill_worker_id: null } } | undefined;

/** The body of a non-streaming response. */
export function fullResponse(
  ids: ResponseIds,
  text: string,
  finishReason: OpenAIFinishReason,
  usage: Usage,
  nvext: Nvext,
): Record<string, unknown> {
  const choice = ids.endpoint === "chat_completions"
    ? {
      index: 0,
      message: { role: "assistant", content: text },
      logprobs: null,
      finish_reason: finishReason,
    }
    : { index: 0, text, logprobs: null, finish_reason: finishReason };
  return {
    id: ids.id,
    object: ids.endpoint === "chat_completions" ? "chat.completion" : "text_completion",
    created: ids.created,
    model: ids.model,
    choices: [choice],
    usage,
    ...(nvext === undefined ? {} : { nvext }),
  };
}

/** One streamed chunk carrying text (and, on the last, the finish reason). */
export function chunk(
  ids: ResponseIds,
  delta: { role?: "assistant"; text?: string },
  finishReason: OpenAIFinishReason | null,
  extra: { includeUsage: boolean; nvext?: Nvext },
): Record<string, unknown> {
  const chat = ids.endpoint === "chat_completions";
  const choice = chat
    ? {
      index: 0,
      delta: {
        ...(delta.role === undefined ? {} : { role: delta.role }),
        ...(delta.text === undefined ? {} : { content: delta.text }),
      },
      logprobs: null,
      finish_reason: finishReason,
    }
    : { index: 0, text: delta.text ?? "", logprobs: null, finish_reason: finishReason };
  return {
    id: ids.id,
    object: chat ? "chat.completion.chunk" : "text_completion",
    created: ids.created,
    model: ids.model,
    choices: [choice],
    ...(extra.includeUsage ? { usage: null } : {}),
    ...(extra.nvext === undefined ? {} : { nvext: extra.nvext }),
  };
}

/** The usage-only chunk sent last when `stream_options.include_usage` is set. */
export function usageChunk(ids: ResponseIds, usage: Usage): Record<string, unknown> {
  return {
    id: ids.id,
    object: ids.endpoint === "chat_completions" ? "chat.completion.chunk" : "text_completion",
    created: ids.created,
    model: ids.model,
    choices: [],
    usage,
  };
}

export function workerIdExtension(instanceId: number | undefined): Nvext {
  return instanceId === undefined
    ? undefined
    : { worker_id: { decode_worker_id: instanceId, prefill_worker_id: null } };
}
