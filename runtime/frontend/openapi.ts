import { z } from "zod";
import { ChatCompletionRequestSchema, CompletionRequestSchema } from "./openai_schemas.ts";

let cached: Record<string, unknown> | undefined;

const errorSchema = {
  type: "object",
  properties: {
    error: {
      type: "object",
      properties: {
        message: { type: "string" },
        type: { type: "string" },
        param: { type: ["string", "null"] },
        code: { type: ["string", "null"] },
      },
      required: ["message", "type"],
    },
  },
};

function post(summary: string, ref: string): Record<string, unknown> {
  return {
    summary,
    requestBody: {
      required: true,
      content: { "application/json": { schema: { $ref: `#/components/schemas/${ref}` } } },
    },
    responses: {
      "200": {
        description:
          "A completion (JSON), or a stream of chunks (text/event-stream) when stream is true",
      },
      "400": errorResponse("Invalid request"),
      "404": errorResponse("Unknown model"),
      "413": errorResponse("Request body too large"),
      "503": errorResponse("No live worker for the model"),
    },
  };
}

function errorResponse(description: string): Record<string, unknown> {
  return {
    description,
    content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
  };
}

function get(summary: string): Record<string, unknown> {
  return { summary, responses: { "200": { description: "OK" } } };
}

/** The OpenAPI 3.1 description of the frontend, with request schemas derived from zod. */
export function openApiDocument(): Record<string, unknown> {
  cached ??= {
    openapi: "3.1.0",
    info: { title: "dynamo frontend", version: "1" },
    paths: {
      "/v1/chat/completions": { post: post("Create a chat completion", "ChatCompletionRequest") },
      "/v1/completions": { post: post("Create a text completion", "CompletionRequest") },
      "/v1/models": { get: get("List served models") },
      "/v1/models/{model}": { get: get("Describe one served model") },
      "/health": { get: get("Registered worker endpoints") },
      "/live": { get: get("Liveness (503 while shutting down)") },
      "/metrics": { get: get("Prometheus metrics") },
    },
    components: {
      schemas: {
        ChatCompletionRequest: z.toJSONSchema(ChatCompletionRequestSchema, {
          unrepresentable: "any",
        }),
        CompletionRequest: z.toJSONSchema(CompletionRequestSchema, { unrepresentable: "any" }),
        Error: errorSchema,
      },
    },
  };
  return cached;
}
