/**
 * Ports that were free a moment ago, one per name, all different: listeners on port 0 are
 * held open together (so the OS cannot hand out the same port twice) and closed before
 * returning. Picked on every interface, since engines bind some sockets there (vLLM's KV
 * event publisher binds `tcp://*:PORT`).
 */
export function pickFreePorts(names: readonly string[]): Promise<Record<string, number>> {
  const listeners: Deno.Listener[] = [];
  try {
    const ports: Record<string, number> = {};
    for (const name of names) {
      const listener = Deno.listen({ hostname: "0.0.0.0", port: 0 });
      listeners.push(listener);
      ports[name] = (listener.addr as Deno.NetAddr).port;
    }
    return Promise.resolve(ports);
  } finally {
    for (const l of listeners) l.close();
  }
}
