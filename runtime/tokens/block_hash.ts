import { xxh3 } from "@node-rs/xxhash";

/** Token ids go into the hash as u32 little-endian; on a little-endian host a Uint32Array is that. */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Dynamo's XXH3 seed for block hashes (`XXH3_SEED`, lib/kv-router/src/protocols.rs). */
export const XXH3_SEED = 1337n;

const U64_MASK = (1n << 64n) - 1n;

/** The seed for a LoRA adapter: 1337 + XXH3-64(name, seed 0), wrapping at 2^64. */
export function loraSeed(loraName: string | undefined): bigint {
  if (loraName === undefined || loraName === "") return XXH3_SEED;
  const nameHash = xxh3.xxh64(new TextEncoder().encode(loraName), 0n);
  return (XXH3_SEED + nameHash) & U64_MASK;
}

/**
 * Hashes token blocks without allocating per token: token ids are written as u32
 * little-endian into one scratch buffer that grows only when a larger block size is seen.
 */
export class BlockHasher {
  #scratch = new Uint8Array(0);
  #view = new DataView(this.#scratch.buffer);
  #words = new Uint32Array(this.#scratch.buffer);
  #pair = new Uint8Array(16);
  #pairView = new DataView(this.#pair.buffer);

  /**
   * Dynamo's LocalBlockHash of every full block of `tokens` (a partial tail is not hashed):
   * XXH3-64 over the block's token ids as u32 LE, seeded with 1337 (or the LoRA seed).
   */
  localHashes(
    tokens: ArrayLike<number>,
    blockSizeTokens: number,
    options: { loraName?: string } = {},
  ): bigint[] {
    const seed = loraSeed(options.loraName);
    const blocks = Math.floor(tokens.length / blockSizeTokens);
    const bytes = blockSizeTokens * 4;
    if (this.#scratch.length < bytes) {
      this.#scratch = new Uint8Array(bytes);
      this.#view = new DataView(this.#scratch.buffer);
      this.#words = new Uint32Array(this.#scratch.buffer);
    }
    const block = this.#scratch.subarray(0, bytes);
    const out = new Array<bigint>(blocks);
    for (let b = 0; b < blocks; b++) {
      const base = b * blockSizeTokens;
      if (LITTLE_ENDIAN) {
        const words = this.#words;
        for (let i = 0; i < blockSizeTokens; i++) words[i] = tokens[base + i]!;
      } else {
        for (let i = 0; i < blockSizeTokens; i++) {
          this.#view.setUint32(i * 4, tokens[base + i]!, true);
        }
      }
      out[b] = xxh3.xxh64(block, seed);
    }
    return out;
  }

  /** The hash chaining `parent` and `local`: XXH3-64(le64(parent) || le64(local), 1337). */
  chain(parent: bigint, local: bigint): bigint {
    this.#pairView.setBigUint64(0, parent, true);
    this.#pairView.setBigUint64(8, local, true);
    return xxh3.xxh64(this.#pair, XXH3_SEED);
  }

  /** Dynamo's SequenceHash chain: `seq[0] = local[0]`, `seq[i] = chain(seq[i-1], local[i])`. */
  sequenceHashes(localHashes: readonly bigint[]): bigint[] {
    const out = new Array<bigint>(localHashes.length);
    let parent = 0n;
    for (let i = 0; i < localHashes.length; i++) {
      parent = i === 0 ? localHashes[0]! : this.chain(parent, localHashes[i]!);
      out[i] = parent;
    }
    return out;
  }
}
