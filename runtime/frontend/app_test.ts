import assert from "node:assert/strict";
import { frontendFixture, MODEL, until } from "./_test_fixture.ts";

function post(path: string, body: unknown, headers: Record<string, string> = {}): Request {
  return new Request(`http://frontend${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

const chat = (extra: Record<string, unknown> = {}) => ({
  model: MODEL,
  messages: [{ role: "user", content: "Hello there" }],
  max_tokens: 8,
  ignore_eos: true,
  ...extra,
});

/** Reads an SSE body into its `data:` payloads. */
async function sseEvents(res: Response): Promise<string[]> {
  const text = await res.text();
  return text.split("\n\n").filter((b) => b.startsWith("data: ")).map((b) => b.slice(6));
}

Deno.test("createFrontendApp() lists models and completes a chat with true usage", async () => {
  const fx = await frontendFixture();
  try {
    const models = await (await fx.role.app.request("/v1/models")).json();
    assert.deepEqual(models.data.map((m: { id: string }) => m.id), [MODEL]);
    const res = await fx.role.app.request(post("/v1/chat/completions", chat()));
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.equal(body.object, "chat.completion");
    assert.equal(body.choices[0].finish_reason, "length");
    assert.equal(body.usage.completion_tokens, 8);
    assert.equal(body.usage.prompt_tokens, fx.workers[0]!.received[0]!.token_ids.length);
    assert.equal(body.usage.total_tokens, body.usage.prompt_tokens + 8);
  } finally {
    await fx.close();
  }
});

Deno.test("POST /v1/chat/completions streams SSE chunks, a usage chunk and [DONE]", async () => {
  const fx = await frontendFixture();
  try {
    const res = await fx.role.app.request(
      post("/v1/chat/completions", chat({ stream: true, stream_options: { include_usage: true } })),
    );
    assert.equal(res.headers.get("content-type"), "text/event-stream");
    const events = await sseEvents(res);
    assert.equal(events.at(-1), "[DONE]");
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
    assert.equal(chunks[0].choices[0].delta.role, "assistant");
    assert.equal(chunks[0].usage, null);
    const last = chunks.at(-1);
    assert.deepEqual(last.choices, []);
    assert.equal(last.usage.completion_tokens, 8);
    const finish = chunks.at(-2);
    assert.equal(finish.choices[0].finish_reason, "length");
    const content = chunks.filter((c) => c.choices[0]?.delta?.content).length;
    assert.equal(content, 8);
  } finally {
    await fx.close();
  }
});

Deno.test("POST /v1/completions accepts a token-id prompt and honours stop strings", async () => {
  const fx = await frontendFixture();
  try {
    const res = await fx.role.app.request(post("/v1/completions", {
      model: MODEL,
      prompt: [9707, 1879, 11, 220],
      max_tokens: 100,
      ignore_eos: true,
      temperature: 0,
    }));
    const full = await res.json();
    assert.equal(full.object, "text_completion");
    assert.deepEqual(fx.workers[0]!.received[0]!.token_ids, [9707, 1879, 11, 220]);
    const text: string = full.choices[0].text;
    const word = text.trim().split(" ")[2]!;
    const stopped = await (await fx.role.app.request(post("/v1/completions", {
      model: MODEL,
      prompt: [9707, 1879, 11, 220],
      max_tokens: 100,
      ignore_eos: true,
      temperature: 0,
      stop: [word],
    }))).json();
    assert.equal(stopped.choices[0].finish_reason, "stop");
    assert.equal(stopped.choices[0].text, text.slice(0, text.indexOf(word)));
    assert.ok(stopped.usage.completion_tokens < 100);
  } finally {
    await fx.close();
  }
});

Deno.test("createFrontendApp() rejects bad input with OpenAI errors naming the field", async () => {
  const fx = await frontendFixture({ maxBodyBytes: 4096, contextLength: 64 });
  const app = fx.role.app;
  try {
    const cases: [Request, number, string | null, string][] = [
      [post("/v1/chat/completions", { model: MODEL }), 400, "messages", "invalid_field"],
      [post("/v1/chat/completions", chat({ temperature: 3 })), 400, "temperature", "invalid_field"],
      [post("/v1/chat/completions", chat({ n: 2 })), 400, "n", "unsupported_parameter"],
      [
        post("/v1/chat/completions", chat({ max_tokens: 1000 })),
        400,
        "max_tokens",
        "context_length_exceeded",
      ],
      [post("/v1/chat/completions", "{oops"), 400, null, "invalid_json"],
      [post("/v1/chat/completions", chat({ model: "missing" })), 404, "model", "model_not_found"],
      [post("/v1/chat/completions", chat({ pad: "x".repeat(5000) })), 413, null, "body_too_large"],
      [
        post("/v1/completions", { model: MODEL, prompt: ["a", "b"] }),
        400,
        "prompt",
        "unsupported_parameter",
      ],
      [
        post("/v1/chat/completions", chat(), { "x-worker-instance-id": "abc" }),
        400,
        "x-worker-instance-id",
        "invalid_header",
      ],
      [
        post("/v1/chat/completions", chat(), { "x-worker-instance-id": "999" }),
        404,
        "nvext.backend_instance_id",
        "unknown_worker",
      ],
    ];
    for (const [req, status, param, code] of cases) {
      const res = await app.request(req);
      const body = await res.json();
      assert.equal(res.status, status, JSON.stringify(body));
      assert.equal(body.error.param, param);
      assert.equal(body.error.code, code);
      assert.equal(typeof body.error.message, "string");
      assert.equal(typeof body.error.type, "string");
    }
  } finally {
    await fx.close();
  }
});

Deno.test("createFrontendApp() answers 503 for a known model whose workers are gone", async () => {
  const fx = await frontendFixture();
  try {
    await fx.removeWorker(fx.workers[0]!);
    await until(() => fx.role.registry.get(MODEL) === undefined, "worker removal");
    const res = await fx.role.app.request(post("/v1/chat/completions", chat()));
    assert.equal(res.status, 503);
    assert.equal(res.headers.get("retry-after"), "1");
    assert.equal((await res.json()).error.code, "no_workers");
    assert.deepEqual((await (await fx.role.app.request("/v1/models")).json()).data, []);
  } finally {
    await fx.close();
  }
});

Deno.test("Pipeline skips an unreachable worker and routes round-robin over the rest", async () => {
  const fx = await frontendFixture({ workers: 3 });
  try {
    fx.workers[0]!.unreachable = true;
    for (let i = 0; i < 6; i++) {
      const res = await fx.role.app.request(post("/v1/chat/completions", chat()));
      assert.equal(res.status, 200);
      await res.json();
    }
    assert.equal(fx.workers[0]!.received.length, 0);
    assert.equal(fx.workers[1]!.received.length, 3);
    assert.equal(fx.workers[2]!.received.length, 3);
  } finally {
    await fx.close();
  }
});

Deno.test("A client that disconnects mid-stream cancels its request on the worker", async () => {
  const fx = await frontendFixture();
  const engine = fx.workers[0]!.engine;
  try {
    const res = await fx.role.app.request(
      post("/v1/chat/completions", chat({ stream: true, max_tokens: 5000 })),
    );
    const reader = res.body!.getReader();
    await reader.read();
    assert.equal(engine.load().num_requests_running, 1);
    await reader.cancel();
    await until(() => engine.load().num_requests_running === 0, "the worker to free the request");
    const metrics = await (await fx.role.app.request("/metrics")).text();
    assert.match(metrics, /dynamo_frontend_disconnected_clients 1/);
    assert.match(metrics, /dynamo_frontend_inflight_requests\{model="Qwen\/Qwen3-0.6B"\} 0/);
  } finally {
    await fx.close();
  }
});

Deno.test("GET /metrics counts requests by status with Dynamo's names", async () => {
  const fx = await frontendFixture();
  try {
    await (await fx.role.app.request(post("/v1/chat/completions", chat()))).json();
    await (await fx.role.app.request(post("/v1/chat/completions", chat({ temperature: 9 }))))
      .json();
    const text = await (await fx.role.app.request("/metrics")).text();
    assert.match(
      text,
      /dynamo_frontend_requests_total\{model="Qwen\/Qwen3-0.6B",endpoint="chat_completions",request_type="unary",status="success",error_type=""\} 1/,
    );
    assert.match(
      text,
      /dynamo_frontend_time_to_first_token_seconds_count\{model="Qwen\/Qwen3-0.6B"\} 1/,
    );
    assert.match(text, /dynamo_frontend_output_sequence_tokens_sum\{model="Qwen\/Qwen3-0.6B"\} 8/);
    assert.match(
      text,
      /dynamo_frontend_inter_token_latency_seconds_count\{model="Qwen\/Qwen3-0.6B"\} 7/,
    );
  } finally {
    await fx.close();
  }
});

Deno.test("GET /health, /live and /openapi.json describe the service", async () => {
  const fx = await frontendFixture();
  try {
    const health = await (await fx.role.app.request("/health")).json();
    assert.equal(health.status, "healthy");
    assert.deepEqual(health.endpoints, ["dyn://dynamo.backend.generate"]);
    assert.equal(health.instances.length, 1);
    assert.equal((await fx.role.app.request("/live")).status, 200);
    fx.role.beginShutdown();
    assert.equal((await fx.role.app.request("/live")).status, 503);
    const doc = await (await fx.role.app.request("/openapi.json")).json();
    assert.ok(doc.paths["/v1/chat/completions"].post);
    assert.ok(doc.components.schemas.ChatCompletionRequest.properties.messages);
  } finally {
    await fx.close();
  }
});

Deno.test("Pipeline retries a draining worker's refusal on another worker", async () => {
  const fx = await frontendFixture({ workers: 2 });
  try {
    fx.workers[0]!.draining = true;
    for (let i = 0; i < 4; i++) {
      const res = await fx.role.app.request(post("/v1/chat/completions", chat()));
      assert.equal(res.status, 200);
      await res.json();
    }
    assert.equal(fx.workers[1]!.received.length, 4);
  } finally {
    await fx.close();
  }
});

Deno.test("Pipeline retries a request whose worker is lost before any output", async () => {
  const fx = await frontendFixture({ workers: 2 });
  try {
    fx.workers[0]!.lostAfterItems = 0;
    for (const stream of [false, true]) {
      const res = await fx.role.app.request(post("/v1/chat/completions", chat({ stream })));
      assert.equal(res.status, 200);
      if (stream) {
        const events = await sseEvents(res);
        assert.equal(events.at(-1), "[DONE]");
        assert.ok(!events.some((e) => e.includes('"error"')), events.join("\n"));
      } else {
        assert.equal((await res.json()).usage.completion_tokens, 8);
      }
    }
    assert.equal(fx.workers[0]!.received.length, 1, "the lost worker is then left out");
    assert.equal(fx.workers[1]!.received.length, 2);
  } finally {
    await fx.close();
  }
});

Deno.test("A worker lost mid-stream fails the request instead of repeating output", async () => {
  const fx = await frontendFixture({ workers: 2 });
  try {
    fx.workers[0]!.lostAfterItems = 2;
    const res = await fx.role.app.request(
      post("/v1/chat/completions", chat({ stream: true, max_tokens: 50 })),
    );
    const events = await sseEvents(res);
    assert.equal(events.length, 4, events.join("\n"));
    assert.equal(JSON.parse(events[2]!).error.code, "disconnected");
    assert.equal(events[3], "[DONE]");
    assert.equal(fx.workers[1]!.received.length, 0);
  } finally {
    await fx.close();
  }
});

Deno.test("nvext.extra_fields [worker_id] reports the worker that served the request", async () => {
  const fx = await frontendFixture({ workers: 2 });
  try {
    const target = fx.workers[1]!.instanceId;
    const unary = await (await fx.role.app.request(post(
      "/v1/chat/completions",
      chat({ nvext: { extra_fields: ["worker_id"], backend_instance_id: target } }),
    ))).json();
    assert.equal(unary.nvext.worker_id.decode_worker_id, target);
    const events = await sseEvents(
      await fx.role.app.request(post(
        "/v1/chat/completions",
        chat({ stream: true, nvext: { extra_fields: ["worker_id"] } }),
        { "x-worker-instance-id": String(target) },
      )),
    );
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
    assert.equal(chunks.at(-1).nvext.worker_id.decode_worker_id, target);
    assert.equal(chunks[0].nvext, undefined);
    assert.equal(fx.workers[1]!.received.length, 2);
    assert.equal(fx.workers[0]!.received.length, 0);
  } finally {
    await fx.close();
  }
});

Deno.test("A request past its deadline fails with 504 and frees its worker", async () => {
  const fx = await frontendFixture({ speedupRatio: 1, requestTimeoutMs: 300 });
  const engine = fx.workers[0]!.engine;
  try {
    const res = await fx.role.app.request(post("/v1/chat/completions", chat({ max_tokens: 5000 })));
    assert.equal(res.status, 504);
    assert.equal((await res.json()).error.code, "timed_out");
    const events = await sseEvents(
      await fx.role.app.request(
        post("/v1/chat/completions", chat({ max_tokens: 5000, stream: true })),
      ),
    );
    assert.equal(events.at(-1), "[DONE]");
    assert.equal(JSON.parse(events.at(-2)!).error.code, "timed_out");
    await until(() => engine.load().num_requests_running === 0, "the worker to free the requests");
  } finally {
    await fx.close();
  }
});
