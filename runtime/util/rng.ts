/** A seeded source of randomness. Cores take one; they never call Math.random(). */
export interface Rng {
  /** A uniform float in [0, 1). */
  nextFloat(): number;
  /** A uniform integer in [0, n). */
  nextInt(n: number): number;
  /** A uniform unsigned 32-bit integer. */
  nextU32(): number;
}

/** Hashes a string or number to a 32-bit seed (FNV-1a over the UTF-16 code units). */
export function seedFrom(value: string | number): number {
  const text = typeof value === "number" ? String(value) : value;
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/**
 * sfc32 (Chris Doty-Humphrey's Small Fast Counter): 128 bits of state, passes PractRand,
 * and is fast in 32-bit integer JavaScript arithmetic.
 */
export class SeededRng implements Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  constructor(seed: number) {
    this.#a = 0x9e3779b9;
    this.#b = 0x243f6a88;
    this.#c = 0xb7e15162;
    this.#d = seed >>> 0;
    for (let i = 0; i < 12; i++) this.nextU32();
  }

  nextU32(): number {
    const t = (((this.#a + this.#b) >>> 0) + this.#d) >>> 0;
    this.#d = (this.#d + 1) >>> 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) >>> 0;
    this.#c = ((this.#c << 21) | (this.#c >>> 11)) >>> 0;
    this.#c = (this.#c + t) >>> 0;
    return t;
  }

  nextFloat(): number {
    return this.nextU32() / 4294967296;
  }

  nextInt(n: number): number {
    return Math.floor(this.nextFloat() * n);
  }
}

/** Randomness from the platform, for shells that need unpredictable ids. */
export const systemRng: Rng = {
  nextFloat: () => Math.random(),
  nextInt: (n: number) => Math.floor(Math.random() * n),
  nextU32: () => crypto.getRandomValues(new Uint32Array(1))[0]!,
};

/** A random id that is a safe JavaScript integer (53 bits), so it survives JSON exactly. */
export function randomInstanceId(): number {
  const words = crypto.getRandomValues(new Uint32Array(2));
  const high = words[0]! & 0x1fffff; // 21 bits
  const id = high * 4294967296 + words[1]!;
  return id === 0 ? 1 : id;
}
