/**
 * Router service: the KV-aware router as its own role (`dynamo router`), serving
 * `POST /v1/route` for frontends (`--router-url`) and gateways. Binding a socket is the
 * CLI's job.
 * @module
 */
export { type RouterService, startRouterService } from "./router_service.ts";
