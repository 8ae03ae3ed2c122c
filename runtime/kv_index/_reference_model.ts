/**
 * A naive, obviously-correct model of `KvIndex` for the property test: nodes are objects
 * with a `Map` of children and a `Set` of workers, the lookup is `Map<worker, Map<hash,
 * node>>`, liveness is reachability (from the root and from lookup entries, following
 * children), and "an attached node with no workers and no children is detached" is
 * enforced by a global fixpoint after every step. Slow on purpose: no counters, no
 * reference counts, nothing incremental to get wrong.
 */

import type { ApplyStatus, StoredBlockInput } from "./kv_index.ts";

/** The model's answer to findMatches(): per-worker depth and tree size, as Maps. */
export interface ReferenceScores {
  readonly scores: Map<number, number>;
  readonly treeSizes: Map<number, number>;
}

class RefNode {
  readonly children = new Map<bigint, RefNode>();
  readonly workers = new Set<number>();
}

/** The reference semantics of `KvIndex`, written for clarity only. */
export class ReferenceIndex {
  readonly #root = new RefNode();
  readonly #lookup = new Map<number, Map<bigint, RefNode>>();
  readonly #max: number;

  constructor(maxTreeSizeBlocks: number) {
    this.#max = maxTreeSizeBlocks;
  }

  get sizeBlocks(): number {
    return this.#liveNodes().size - 1;
  }

  workers(): number[] {
    return [...this.#lookup.keys()].sort((x, y) => x - y);
  }

  workerTreeSize(worker: number): number {
    return this.#lookup.get(worker)?.size ?? 0;
  }

  applyStored(
    worker: number,
    parentHash: bigint | null,
    blocks: readonly StoredBlockInput[],
  ): ApplyStatus {
    const lookup = this.#ensure(worker);
    const start = parentHash === null ? this.#root : lookup.get(parentHash);
    if (start === undefined) return "parent_block_not_found";
    let cur: RefNode = start;
    if (blocks.length === 0) return "ok";
    const size = this.sizeBlocks;
    if (size + blocks.length > this.#max && size + this.#dry(lookup, cur, blocks) > this.#max) {
      return "tree_full";
    }
    for (const { blockHash, tokensHash } of blocks) {
      if (!lookup.has(blockHash) && lookup.size >= this.#max) return "tree_full";
      let child: RefNode | undefined = cur.children.get(tokensHash);
      if (child === undefined) {
        const reused = lookup.get(blockHash);
        if (reused !== undefined) {
          if (this.#ancestorsAndSelf(cur).includes(reused)) return "invalid_block";
          const old = this.#parentOf(reused);
          if (old !== undefined) old.node.children.delete(old.key);
          cur.children.set(tokensHash, reused);
          child = reused;
        } else {
          if (this.sizeBlocks >= this.#max) return "tree_full";
          child = new RefNode();
          cur.children.set(tokensHash, child);
        }
      }
      child.workers.add(worker);
      lookup.set(blockHash, child);
      this.#detachEmptyLeaves();
      cur = child;
    }
    return "ok";
  }

  applyRemoved(worker: number, blockHashes: readonly bigint[]): ApplyStatus {
    const lookup = this.#ensure(worker);
    let status: ApplyStatus = "ok";
    for (const hash of blockHashes) {
      const node = lookup.get(hash);
      if (node === undefined) {
        status = "block_not_found";
        continue;
      }
      this.#dropWorker(node, worker);
      lookup.delete(hash);
    }
    return status;
  }

  applyCleared(worker: number): void {
    const lookup = this.#ensure(worker);
    for (const node of lookup.values()) this.#dropWorker(node, worker);
    lookup.clear();
  }

  removeWorker(worker: number): void {
    const lookup = this.#lookup.get(worker);
    if (lookup === undefined) return;
    for (const node of lookup.values()) this.#dropWorker(node, worker);
    this.#lookup.delete(worker);
  }

  findMatches(localHashes: readonly bigint[]): ReferenceScores {
    const raw = new Map<number, number>();
    const first = localHashes.length > 0 ? this.#root.children.get(localHashes[0]!) : undefined;
    if (first !== undefined && first.workers.size > 0) {
      const active = new Set(first.workers);
      let depth = 1;
      let cur = first;
      for (let i = 1; i < localHashes.length; i++) {
        const next = cur.children.get(localHashes[i]!);
        if (next === undefined) break;
        for (const w of [...active]) {
          if (!next.workers.has(w)) {
            raw.set(w, depth);
            active.delete(w);
          }
        }
        if (active.size === 0) break;
        depth = i + 1;
        cur = next;
      }
      for (const w of active) raw.set(w, depth);
    }
    const scores = new Map<number, number>();
    const treeSizes = new Map<number, number>();
    for (const [w, depth] of raw) {
      const lookup = this.#lookup.get(w);
      if (lookup === undefined) continue;
      scores.set(w, depth);
      treeSizes.set(w, lookup.size);
    }
    return { scores, treeSizes };
  }

  #dropWorker(node: RefNode, worker: number): void {
    node.workers.delete(worker);
    if (node.workers.size === 0) node.children.clear();
    this.#detachEmptyLeaves();
  }

  #dry(lookup: Map<bigint, RefNode>, start: RefNode, blocks: readonly StoredBlockInput[]): number {
    let cur: RefNode | null = start;
    let created = 0;
    for (const { blockHash, tokensHash } of blocks) {
      const child: RefNode | undefined = cur?.children.get(tokensHash);
      if (child !== undefined) {
        cur = child;
        continue;
      }
      const reused = lookup.get(blockHash);
      if (reused !== undefined) {
        cur = reused;
        continue;
      }
      created++;
      cur = null;
    }
    return created;
  }

  #ensure(worker: number): Map<bigint, RefNode> {
    let lookup = this.#lookup.get(worker);
    if (lookup === undefined) {
      lookup = new Map();
      this.#lookup.set(worker, lookup);
    }
    return lookup;
  }

  #liveNodes(): Set<RefNode> {
    const live = new Set<RefNode>();
    const stack: RefNode[] = [this.#root];
    for (const lookup of this.#lookup.values()) stack.push(...lookup.values());
    while (stack.length > 0) {
      const node = stack.pop()!;
      if (live.has(node)) continue;
      live.add(node);
      stack.push(...node.children.values());
    }
    return live;
  }

  #parentOf(target: RefNode): { node: RefNode; key: bigint } | undefined {
    for (const node of this.#liveNodes()) {
      for (const [key, child] of node.children) if (child === target) return { node, key };
    }
    return undefined;
  }

  #ancestorsAndSelf(node: RefNode): RefNode[] {
    const out: RefNode[] = [];
    for (let x: RefNode | undefined = node; x !== undefined; x = this.#parentOf(x)?.node) {
      out.push(x);
    }
    return out;
  }

  #detachEmptyLeaves(): void {
    for (let changed = true; changed;) {
      changed = false;
      for (const node of this.#liveNodes()) {
        for (const [key, child] of node.children) {
          if (child.workers.size === 0 && child.children.size === 0) {
            node.children.delete(key);
            changed = true;
          }
        }
      }
    }
  }
}
