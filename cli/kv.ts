import { BlockHasher } from "../runtime/tokens/mod.ts";
import { type Command, commandHelp, runCommand } from "./command.ts";
import { UsageError } from "./flags.ts";

/** Most tokens `dynamo kv hash` reads (16 Mi tokens, 64 MiB of ids). */
const MAX_TOKENS = 16 * 1024 * 1024;

const hashCommand: Command = {
  name: "kv hash",
  summary: "Print Dynamo's block hashes of a token sequence (JSON array on stdin)",
  usage: "--block-size N [--lora-name NAME] < tokens.json",
  details: [
    "Reads a JSON array of token ids on stdin and prints",
    '{"local_hashes": [...], "sequence_hashes": [...]} with each hash as a decimal string:',
    "local hash = XXH3-64 over each full block's token ids as u32 little-endian, seed 1337",
    "(with a LoRA adapter: 1337 + XXH3-64(name, seed 0), wrapping); sequence hash chains",
    "seq[0] = local[0], seq[i] = XXH3-64(le64(seq[i-1]) || le64(local[i]), 1337).",
    "A partial last block is not hashed.",
    "",
    "Example: echo '[1,2,3,4,5,6,7,8]' | dynamo kv hash --block-size 4",
  ].join("\n"),
  flags: [
    {
      name: "block-size",
      type: "int",
      min: 1,
      max: 1 << 20,
      help: "Tokens per KV block (required)",
    },
    { name: "lora-name", type: "string", help: "LoRA adapter name (changes the hash seed)" },
  ],
  async run(args) {
    const blockSize = args.values["block-size"] as number | undefined;
    if (blockSize === undefined) throw new UsageError("Missing required flag --block-size");
    const tokens = parseTokens(await new Response(Deno.stdin.readable).text());
    const hasher = new BlockHasher();
    const local = hasher.localHashes(tokens, blockSize, {
      loraName: args.values["lora-name"] as string | undefined,
    });
    const sequence = hasher.sequenceHashes(local);
    console.log(JSON.stringify({
      local_hashes: local.map(String),
      sequence_hashes: sequence.map(String),
    }));
    return 0;
  },
};

/** Parses stdin as a JSON array of u32 token ids; anything else is a usage error. */
export function parseTokens(text: string): number[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new UsageError("Invalid input on stdin: not JSON (expected an array of token ids)");
  }
  if (!Array.isArray(value)) {
    throw new UsageError("Invalid input on stdin: expected a JSON array of token ids");
  }
  if (value.length > MAX_TOKENS) {
    throw new UsageError(`Invalid input on stdin: more than ${MAX_TOKENS} tokens`);
  }
  value.forEach((t, i) => {
    if (!Number.isInteger(t) || t < 0 || t > 0xffff_ffff) {
      throw new UsageError(
        `Invalid token at index ${i}: ${JSON.stringify(t)} (expected an integer 0..4294967295)`,
      );
    }
  });
  return value as number[];
}

const SUBCOMMANDS: readonly Command[] = [hashCommand];

/** `dynamo kv <subcommand>`: KV cache tools. */
export const kvCommand: Command = {
  name: "kv",
  summary: "KV cache tools: block hashing (kv hash)",
  usage: "hash --block-size N [--lora-name NAME] < tokens.json",
  flags: [],
  run() {
    return Promise.resolve(0);
  },
};

/** Dispatches `dynamo kv ...`; returns the exit code. */
export function runKv(argv: readonly string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === "-h" || sub === "--help") {
    console.log(
      `dynamo kv: ${kvCommand.summary}\n\nSubcommands:\n${
        SUBCOMMANDS.map((c) => `  ${c.name.slice(3).padEnd(8)}${c.summary}`).join("\n")
      }\n\n${commandHelp(hashCommand)}`,
    );
    return Promise.resolve(sub === undefined ? 2 : 0);
  }
  const cmd = SUBCOMMANDS.find((c) => c.name === `kv ${sub}`);
  if (cmd === undefined) {
    console.error(`dynamo kv: unknown subcommand "${sub}"`);
    console.error(`Run "dynamo kv --help" for usage.`);
    return Promise.resolve(2);
  }
  return runCommand(cmd, rest);
}
