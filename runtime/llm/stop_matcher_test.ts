import assert from "node:assert/strict";
import { StopMatcher } from "./stop_matcher.ts";

function run(stops: string[], chunks: string[]): { text: string; stopped: boolean } {
  const m = new StopMatcher(stops);
  let text = "";
  for (const c of chunks) {
    const r = m.push(c);
    text += r.text;
    if (r.stopped) return { text, stopped: true };
  }
  return { text: text + m.flush(), stopped: false };
}

Deno.test("StopMatcher.push() ends output right before a stop string split across chunks", () => {
  assert.deepEqual(run(["END"], ["hello E", "N", "D more"]), { text: "hello ", stopped: true });
});

Deno.test("StopMatcher.push() releases held text that turns out not to be a stop string", () => {
  const m = new StopMatcher(["stop"]);
  assert.deepEqual(m.push("a st"), { text: "a ", stopped: false });
  assert.deepEqual(m.push("ar"), { text: "star", stopped: false });
  assert.equal(m.flush(), "");
  assert.deepEqual(run(["stop"], ["x st"]), { text: "x st", stopped: false });
});

Deno.test("StopMatcher.push() picks the earliest of several stop strings", () => {
  assert.deepEqual(run(["world", "lo"], ["hello world"]), { text: "hel", stopped: true });
});

Deno.test("StopMatcher.push() passes text through without stop strings", () => {
  const m = new StopMatcher([]);
  assert.deepEqual(m.push("abc"), { text: "abc", stopped: false });
});
