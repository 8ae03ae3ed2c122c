import * as zmq from "zeromq";
import { DynamoError } from "../errors/mod.ts";
import { PollingReader } from "./_zmq_poll.ts";
import { decodeSeq, encodeSeq, VLLM_REPLAY_END_SEQ } from "./vllm_wire.ts";

/** Options for `requestVllmReplay`. */
export interface VllmReplayOptions {
  /** The whole exchange must end within this. Default 2000 ms. */
  readonly timeoutMs?: number;
  /** Batches accepted before giving up on the rest. Default 10,000 (vLLM's buffer_steps). */
  readonly maxBatches?: number;
  readonly signal?: AbortSignal;
}

/** What a replay returned: raw batches in seq order, and whether the end marker came. */
export interface VllmReplayResult {
  readonly batches: readonly { readonly seq: bigint; readonly payload: Uint8Array }[];
  readonly complete: boolean;
}

/**
 * Asks a vLLM replay socket (ROUTER) for every buffered batch from `startSeq` on: sends
 * `["", start_seq u64 BE]` from a DEALER, the envelope a REQ socket would add, and reads
 * `["", seq, payload]` replies until the `(-1) as i64` end marker. A fresh socket per
 * request keeps replies of an abandoned request from leaking into the next; replays are
 * rare. Throws `invalid_request` for a malformed reply; a timeout returns what came, with
 * `complete: false`.
 */
export async function requestVllmReplay(
  endpoint: string,
  startSeq: bigint,
  options: VllmReplayOptions = {},
): Promise<VllmReplayResult> {
  const timeoutMs = options.timeoutMs ?? 2000;
  const maxBatches = options.maxBatches ?? 10_000;
  const dealer = new zmq.Dealer({ linger: 0, receiveTimeout: 0, sendTimeout: 0 });
  const batches: { seq: bigint; payload: Uint8Array }[] = [];
  try {
    dealer.connect(endpoint);
    // With immediate off (the default) a connecting DEALER queues, so this cannot fail for
    // want of a peer; it fails only for a full queue, which a fresh socket does not have.
    await dealer.send([new Uint8Array(0), encodeSeq(startSeq)]);
    const reader = new PollingReader(dealer, 20);
    const deadlineMs = performance.now() + timeoutMs;
    while (batches.length < maxBatches) {
      const frames = await reader.next({ signal: options.signal, deadlineMs });
      if (frames === undefined) break;
      if (frames.length !== 3 || frames[0]!.length !== 0) {
        throw new DynamoError(
          "invalid_request",
          "malformed_replay",
          `Cannot read vLLM replay from ${endpoint}: expected ["", seq, payload], got ${frames.length} frames`,
        );
      }
      const seq = decodeSeq(frames[1]!);
      if (seq === VLLM_REPLAY_END_SEQ) return { batches, complete: true };
      batches.push({ seq, payload: frames[2]! });
    }
    return { batches, complete: false };
  } finally {
    dealer.close();
  }
}
