/**
 * Supervisor: runs role processes as children, restarts crashed ones with bounded
 * exponential backoff, and stops them all (SIGTERM, then SIGKILL) on shutdown.
 * @module
 */
export { type ChildProcessHandle, denoSpawner, type Spawner } from "./spawner.ts";
export { type ChildSpec, Supervisor, type SupervisorOptions } from "./supervisor.ts";
