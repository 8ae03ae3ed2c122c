import { main } from "./cli/mod.ts";

Deno.exit(await main(Deno.args));
