import assert from "node:assert/strict";
import fc from "fast-check";
import { decodeKeyFromFile, encodeKeyForFile } from "./key_encoding.ts";

Deno.test("encodeKeyForFile() percent-encodes every byte but A-Z a-z 0-9, in uppercase hex", () => {
  assert.equal(
    encodeKeyForFile("dynamo/backend/generate/1a2b"),
    "dynamo%2Fbackend%2Fgenerate%2F1a2b",
  );
  assert.equal(encodeKeyForFile("a-b.c_d~e f%g"), "a%2Db%2Ec%5Fd%7Ee%20f%25g");
  // UTF-8 bytes, one %XX each.
  assert.equal(encodeKeyForFile("é/ü"), "%C3%A9%2F%C3%BC");
  assert.equal(encodeKeyForFile("AZaz09"), "AZaz09");
});

Deno.test("decodeKeyFromFile() inverts encodeKeyForFile()", () => {
  assert.equal(
    decodeKeyFromFile("dynamo%2Fbackend%2Fgenerate%2F694d98147d54be25"),
    "dynamo/backend/generate/694d98147d54be25",
  );
  fc.assert(
    fc.property(fc.string({ unit: "grapheme", minLength: 1, maxLength: 40 }), (key) => {
      assert.equal(decodeKeyFromFile(encodeKeyForFile(key)), key);
    }),
    { numRuns: 500 },
  );
});

Deno.test("decodeKeyFromFile() rejects names no encoder writes", () => {
  for (
    const name of [
      "",
      ".tmp_0123456789abcdef", // a writer's temp file
      "dynamo%2fbackend", // lowercase hex
      "dynamo%2", // truncated escape
      "dynamo%", // bare percent
      "a%41", // an alphanumeric byte escaped
      "a-b", // a byte left unescaped
      "%C3", // not UTF-8
      "k".repeat(256), // longer than a file name can be
    ]
  ) {
    assert.equal(decodeKeyFromFile(name), undefined, name);
  }
});
