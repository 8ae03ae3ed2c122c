/**
 * Starts a timer that never keeps the process alive (a discovery lease or rescan must not be
 * why a finished process lingers) and returns its id for `clearTimeout`.
 */
export function startUnrefTimer(fn: () => void, delayMs: number): number {
  // Deno returns a number; with @types/node in the program (any `node:` import) the checker
  // sees Node's Timeout object instead, hence the cast.
  const id = setTimeout(fn, delayMs) as unknown as number;
  Deno.unrefTimer(id);
  return id;
}
