/**
 * Small shared utilities: injected time (Clock), seeded randomness (Rng), and async helpers.
 * Nothing here knows about LLMs or the network.
 * @module
 */
export { abortableSleep, type Clock, ManualClock, systemClock } from "./clock.ts";
export { randomInstanceId, type Rng, SeededRng, seedFrom, systemRng } from "./rng.ts";
export { AsyncQueue, type Deferred, deferred, timeoutSignal } from "./async.ts";
