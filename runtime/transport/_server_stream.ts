import type { DynamoError } from "../errors/mod.ts";
import { type Deferred, deferred } from "../util/mod.ts";

/** What `race` returns when the stream was cancelled before the promise settled. */
export const CANCELLED: unique symbol = Symbol("cancelled");

/**
 * Server-side state of one stream: the credit the client has granted, and cancellation.
 * The pump sends an item only while credit is positive, so the client bounds how far the
 * handler's generator runs ahead of it.
 */
export class ServerStream {
  readonly id: number;
  readonly endpoint: string;
  readonly window: number;
  #credit: number;
  #controller = new AbortController();
  #wake: Deferred<void> | undefined;
  #cancelled: Deferred<typeof CANCELLED> = deferred();

  constructor(id: number, endpoint: string, window: number) {
    this.id = id;
    this.endpoint = endpoint;
    this.window = window;
    this.#credit = window;
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  get isCancelled(): boolean {
    return this.#controller.signal.aborted;
  }

  get credit(): number {
    return this.#credit;
  }

  /** Adds credit from the client. Returns false if that would exceed the window. */
  addCredit(n: number): boolean {
    if (this.#credit + n > this.window) return false;
    this.#credit += n;
    this.#wakeUp();
    return true;
  }

  /** Takes one unit of credit for an item about to be sent. */
  takeCredit(): void {
    this.#credit--;
  }

  /** Resolves true once credit is available, false if the stream is cancelled first. */
  async waitForCredit(): Promise<boolean> {
    while (this.#credit <= 0 && !this.isCancelled) {
      this.#wake = deferred<void>();
      await this.#wake.promise;
    }
    return !this.isCancelled;
  }

  /** Settles with `promise`, or with CANCELLED as soon as the stream is cancelled. */
  race<T>(promise: Promise<T>): Promise<T | typeof CANCELLED> {
    // An abandoned promise may still reject later; that must not become an unhandled rejection.
    promise.catch(() => {});
    return Promise.race([promise, this.#cancelled.promise]);
  }

  /** Aborts the handler's signal and wakes the pump. Returns false if already cancelled. */
  cancel(reason: DynamoError): boolean {
    if (this.isCancelled) return false;
    this.#controller.abort(reason);
    this.#cancelled.resolve(CANCELLED);
    this.#wakeUp();
    return true;
  }

  #wakeUp(): void {
    const w = this.#wake;
    this.#wake = undefined;
    w?.resolve();
  }
}
