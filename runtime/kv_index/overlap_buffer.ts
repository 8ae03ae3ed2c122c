/** A caller-assigned dense id for one (worker, dp_rank): a small non-negative integer (< 2^20). */
export type WorkerKey = number;

/**
 * The answer to `findMatches()`, as parallel arrays valid up to `count`: one entry per worker
 * that holds at least the request's first block. Reusable: pass the same buffer to every call
 * and no call allocates (a hot router reuses one).
 */
export class OverlapBuffer {
  workers: Int32Array = new Int32Array(64);
  /** Matched depth in blocks of `workers[i]`. */
  depths: Int32Array = new Int32Array(64);
  /** Lookup size (blocks in the index) of `workers[i]`: the tie-breaker for selection. */
  treeSizes: Int32Array = new Int32Array(64);
  count = 0;

  /** The matched depth of `worker` in blocks, 0 when it did not match (a linear scan). */
  depthOf(worker: WorkerKey): number {
    for (let i = 0; i < this.count; i++) if (this.workers[i] === worker) return this.depths[i]!;
    return 0;
  }

  /** Appends one entry, growing the arrays when they are full. */
  push(worker: WorkerKey, depth: number, treeSize: number): void {
    const c = this.count;
    if (c === this.workers.length) this.#grow();
    this.workers[c] = worker;
    this.depths[c] = depth;
    this.treeSizes[c] = treeSize;
    this.count = c + 1;
  }

  #grow(): void {
    const size = this.workers.length * 2;
    const workers = new Int32Array(size);
    workers.set(this.workers);
    this.workers = workers;
    const depths = new Int32Array(size);
    depths.set(this.depths);
    this.depths = depths;
    const treeSizes = new Int32Array(size);
    treeSizes.set(this.treeSizes);
    this.treeSizes = treeSizes;
  }
}
