import assert from "node:assert/strict";
import { LineTail, readLines } from "./line_tail.ts";

Deno.test("LineTail keeps the last maxLines lines, oldest first, each cut to maxLineChars", () => {
  const tail = new LineTail({ maxLines: 3, maxLineChars: 20 });
  for (const l of ["a", "b", "c", "d", "x".repeat(30)]) tail.push(l);
  assert.equal(tail.total, 5);
  assert.deepEqual(tail.lines(), ["c", "d", `${"x".repeat(20)}… (10 more chars)`]);
  assert.deepEqual(tail.lines(1), [`${"x".repeat(20)}… (10 more chars)`]);
});

Deno.test("readLines() splits on \\n and \\r\\n across chunks and cuts lines without an end", async () => {
  const chunks = ["one\r\ntw", "o\nthree", "-four-five"];
  const stream = ReadableStream.from(chunks.map((c) => new TextEncoder().encode(c)));
  assert.deepEqual(await Array.fromAsync(readLines(stream, 8)), [
    "one",
    "two",
    "three-fo",
    "ur-five",
  ]);
});
