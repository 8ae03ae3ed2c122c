import { createXXHash3, type IHasher } from "hash-wasm";

const MASK64 = (1n << 64n) - 1n;
const hashers = new Map<bigint, Promise<IHasher>>();

/** XXH3-64 of `bytes` with a 64-bit seed, by hash-wasm (an independent implementation). */
async function xxh3(bytes: Uint8Array, seed: bigint): Promise<bigint> {
  let hasher = hashers.get(seed);
  if (hasher === undefined) {
    hasher = createXXHash3(Number(seed & 0xffff_ffffn), Number(seed >> 32n));
    hashers.set(seed, hasher);
  }
  const h = await hasher;
  h.init();
  h.update(bytes);
  return BigInt(`0x${h.digest("hex")}`);
}

/**
 * Dynamo's block hashes computed the slow, obvious way with an independent XXH3
 * implementation (hash-wasm), for tests only.
 */
export async function expectedHashes(
  tokens: readonly number[],
  blockSize: number,
  loraName: string | undefined,
): Promise<{ local: bigint[]; sequence: bigint[] }> {
  let seed = 1337n;
  if (loraName !== undefined && loraName !== "") {
    seed = (1337n + await xxh3(new TextEncoder().encode(loraName), 0n)) & MASK64;
  }
  const local: bigint[] = [];
  for (let start = 0; start + blockSize <= tokens.length; start += blockSize) {
    const bytes = new Uint8Array(blockSize * 4);
    const view = new DataView(bytes.buffer);
    for (let i = 0; i < blockSize; i++) view.setUint32(i * 4, tokens[start + i]!, true);
    local.push(await xxh3(bytes, seed));
  }
  const sequence: bigint[] = [];
  for (const [i, h] of local.entries()) {
    if (i === 0) {
      sequence.push(h);
      continue;
    }
    const pair = new Uint8Array(16);
    const view = new DataView(pair.buffer);
    view.setBigUint64(0, sequence[i - 1]!, true);
    view.setBigUint64(8, h, true);
    sequence.push(await xxh3(pair, 1337n));
  }
  return { local, sequence };
}
