import { MockerCore } from "./mocker_core.ts";
import { TEST_VOCABULARY, testRequest } from "./_test_helpers.ts";

/** A full batch of 256 requests with 1k-token prompts (shared 512-token prefix), 256 tokens out. */
function busyCore(): MockerCore {
  const core = new MockerCore({ vocabulary: TEST_VOCABULARY });
  for (let i = 0; i < 256; i++) {
    const prompt = Array.from({ length: 1024 }, (_, k) => (k < 512 ? k : 10_000 * (i + 1) + k));
    core.addRequest(testRequest(`r${i}`, prompt, { maxTokens: 256 }), 0);
  }
  return core;
}

Deno.bench("MockerCore.step() until 256 concurrent requests finish", () => {
  const core = busyCore();
  let now = 0;
  while (core.hasWork()) now += core.step(now).durationMs;
});
