/**
 * Engines: the Engine interface workers drive, and its implementations (the mocker today).
 * Does not know about discovery or the request plane.
 * @module
 */
export type { Engine, EngineInfo, EngineLoad } from "./engine.ts";
