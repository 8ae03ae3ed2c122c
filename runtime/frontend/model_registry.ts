import type { DiscoveryBackend } from "../discovery/discovery.ts";
import type { ModelTokenizer, TokenizerCache } from "../llm/mod.ts";
import { Logger } from "../observability/mod.ts";
import {
  BUCKETS,
  type EndpointInstance,
  type ModelCard,
  type ModelInstance,
  parseTcpTransport,
} from "../protocol/mod.ts";
import type { WorkerCandidate, WorkerSelector } from "../router/mod.ts";

const log = new Logger("frontend.models");

/** A worker that serves a model: its card and where to send requests. */
export interface ServingWorker extends WorkerCandidate {
  readonly host: string;
  readonly port: number;
  readonly endpoint: string;
  readonly component: string;
}

/** A model the frontend can serve: its tokenizer, its selector and its live workers. */
export interface ServedModel {
  readonly name: string;
  readonly card: ModelCard;
  readonly tokenizer: ModelTokenizer;
  readonly selector: WorkerSelector;
  /** Workers that may take a request now (live in discovery and not recently unreachable). */
  routableWorkers(nowMs: number): ServingWorker[];
  /** Every worker live in discovery. */
  allWorkers(): ServingWorker[];
  /** Keeps a worker out of selection until `untilMs` (it refused a connection). */
  markUnreachable(instanceId: number, untilMs: number): void;
}

export interface ModelRegistryOptions {
  readonly namespace: string;
  readonly tokenizers: TokenizerCache;
  readonly createSelector: (card: ModelCard) => WorkerSelector;
}

class ModelEntry implements ServedModel {
  readonly name: string;
  readonly card: ModelCard;
  readonly tokenizer: ModelTokenizer;
  readonly selector: WorkerSelector;
  readonly workers = new Map<number, ServingWorker>();
  readonly #unreachableUntilMs = new Map<number, number>();

  constructor(card: ModelCard, tokenizer: ModelTokenizer, selector: WorkerSelector) {
    this.name = card.display_name;
    this.card = card;
    this.tokenizer = tokenizer;
    this.selector = selector;
  }

  routableWorkers(nowMs: number): ServingWorker[] {
    const out: ServingWorker[] = [];
    for (const w of this.workers.values()) {
      const until = this.#unreachableUntilMs.get(w.instanceId);
      if (until !== undefined && until > nowMs) continue;
      out.push(w);
    }
    return out;
  }

  allWorkers(): ServingWorker[] {
    return [...this.workers.values()];
  }

  markUnreachable(instanceId: number, untilMs: number): void {
    this.#unreachableUntilMs.set(instanceId, untilMs);
  }

  removeWorker(instanceId: number): void {
    this.workers.delete(instanceId);
    this.#unreachableUntilMs.delete(instanceId);
    this.selector.onWorkerRemoved?.(instanceId);
  }
}

/**
 * The frontend's view of which models are served and by whom, kept in sync with discovery.
 * A model appears only once a worker has registered both its endpoint and its model card
 * and the model's tokenizer has loaded, so a listed model can always be routed.
 */
export class ModelRegistry {
  readonly #discovery: DiscoveryBackend;
  readonly #options: ModelRegistryOptions;
  readonly #endpoints = new Map<number, EndpointInstance>();
  readonly #cards = new Map<number, ModelInstance>();
  readonly #models = new Map<string, ModelEntry>();
  readonly #loading = new Map<string, Promise<void>>();
  readonly #listeners = new Set<() => void>();

  constructor(discovery: DiscoveryBackend, options: ModelRegistryOptions) {
    this.#discovery = discovery;
    this.#options = options;
  }

  /** Follows discovery until `signal` aborts. Resolves once the current state was read. */
  async start(signal: AbortSignal): Promise<void> {
    const initial = await Promise.all([
      this.#discovery.list(BUCKETS.instances),
      this.#discovery.list(BUCKETS.models),
    ]);
    for (const [key, value] of initial[0]) this.#apply("instances", key, value);
    for (const [key, value] of initial[1]) this.#apply("models", key, value);
    this.#reconcile();
    await Promise.all(this.#loading.values());
    this.#follow(BUCKETS.instances, "instances", signal);
    this.#follow(BUCKETS.models, "models", signal);
  }

  /** Models that can be served now, by name. */
  models(): ServedModel[] {
    return [...this.#models.values()].filter((m) => m.workers.size > 0);
  }

  get(name: string): ServedModel | undefined {
    const m = this.#models.get(name);
    return m !== undefined && m.workers.size > 0 ? m : undefined;
  }

  /**
   * The model once it can be served. A worker that registered a moment ago becomes
   * routable only when its model's tokenizer has loaded; a request arriving in that window
   * waits for the load (at most `timeoutMs`, and no longer than `signal` allows) instead
   * of being refused. Resolves `undefined` at once when nothing for `name` is loading.
   */
  async waitFor(
    name: string,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<ServedModel | undefined> {
    const settled = () => this.get(name) !== undefined || !this.#loading.has(name);
    if (settled()) return this.get(name);
    return await new Promise<ServedModel | undefined>((resolve) => {
      const finish = () => {
        off();
        clearTimeout(timer);
        signal?.removeEventListener("abort", finish);
        resolve(this.get(name));
      };
      const off = this.onChange(() => {
        if (settled()) finish();
      });
      const timer = setTimeout(finish, timeoutMs);
      signal?.addEventListener("abort", finish, { once: true });
      if (signal?.aborted) finish();
    });
  }

  /**
   * Whether `name` was ever served here or has a card now (even if its tokenizer is still
   * loading): such a model without live workers is unavailable (503), not unknown (404).
   */
  isKnown(name: string): boolean {
    if (this.#models.has(name)) return true;
    for (const m of this.#cards.values()) {
      if (m.card_json.display_name === name) return true;
    }
    return false;
  }

  /** Calls `listener` after every change; returns an unsubscribe function. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Every live endpoint instance (for /health). */
  endpoints(): EndpointInstance[] {
    return [...this.#endpoints.values()];
  }

  #follow(bucket: string, kind: "instances" | "models", signal: AbortSignal): void {
    (async () => {
      for await (const ev of this.#discovery.watch(bucket as never, signal)) {
        this.#apply(kind, ev.key, ev.kind === "added" ? ev.value : undefined);
        this.#reconcile();
      }
    })().catch((err) => {
      if (!signal.aborted) log.error("Discovery watch failed", { bucket, error: err });
    });
  }

  #apply(kind: "instances" | "models", key: string, value: unknown): void {
    const id = instanceIdFromKey(key);
    if (id === undefined) return;
    const map = kind === "instances" ? this.#endpoints : this.#cards;
    if (value === undefined) {
      map.delete(id);
      return;
    }
    const v = value as EndpointInstance | ModelInstance;
    if (v.namespace !== this.#options.namespace) return;
    if (kind === "instances" && v.type === "Endpoint") this.#endpoints.set(id, v);
    if (kind === "models" && v.type === "Model") this.#cards.set(id, v);
  }

  /**
   * Brings every loaded model's worker set in line with the endpoint and card maps, at
   * once, and starts loading the tokenizer of any model seen for the first time; that
   * model's workers join when its load finishes. A load never holds up other models.
   */
  #reconcile(alwaysNotify = false): void {
    const wanted = new Map<string, Map<number, ServingWorker>>();
    const cardsByName = new Map<string, ModelCard>();
    for (const [id, model] of this.#cards) {
      const endpoint = this.#endpoints.get(id);
      if (endpoint === undefined) continue;
      const worker = toServingWorker(endpoint, model.card_json);
      if (worker === undefined) continue;
      const name = model.card_json.display_name;
      if (!wanted.has(name)) wanted.set(name, new Map());
      wanted.get(name)!.set(id, worker);
      if (!cardsByName.has(name)) cardsByName.set(name, model.card_json);
    }
    for (const [name, card] of cardsByName) {
      if (!this.#models.has(name)) this.#load(name, card);
    }
    let changed = false;
    for (const [name, entry] of this.#models) {
      const target = wanted.get(name) ?? new Map<number, ServingWorker>();
      for (const id of [...entry.workers.keys()]) {
        if (!target.has(id)) {
          entry.removeWorker(id);
          changed = true;
          log.info("Worker left", { model: name, instance_id: id.toString(16) });
        }
      }
      for (const [id, worker] of target) {
        if (!entry.workers.has(id)) {
          entry.workers.set(id, worker);
          changed = true;
          log.info("Worker joined", { model: name, instance_id: id.toString(16) });
        }
      }
    }
    if (changed || alwaysNotify) this.#notify();
  }

  #notify(): void {
    for (const l of this.#listeners) l();
  }

  /** Loads a model's tokenizer once; when it is in, its workers join (see `#reconcile`). */
  #load(name: string, card: ModelCard): void {
    if (this.#loading.has(name)) return;
    const loading = (async () => {
      let loaded = false;
      try {
        const tokenizer = await this.#options.tokenizers.get(card.tokenizer_dir);
        const selector = this.#options.createSelector(card);
        this.#models.set(name, new ModelEntry(card, tokenizer, selector));
        loaded = true;
        log.info("Model available", { model: name, tokenizer_dir: card.tokenizer_dir });
      } catch (err) {
        // Tried again on the next discovery change, as before.
        log.error("Cannot load the model's tokenizer", { model: name, error: err });
      } finally {
        this.#loading.delete(name);
      }
      // Wakes whoever waits on this load, also when nothing changed (it failed, or the
      // model's workers left meanwhile).
      if (loaded) this.#reconcile(true);
      else this.#notify();
    })();
    this.#loading.set(name, loading);
  }
}

/** The instance id is the key's last segment, in hex. */
function instanceIdFromKey(key: string): number | undefined {
  const hex = key.slice(key.lastIndexOf("/") + 1);
  const id = Number.parseInt(hex, 16);
  return Number.isSafeInteger(id) && id > 0 ? id : undefined;
}

function toServingWorker(endpoint: EndpointInstance, card: ModelCard): ServingWorker | undefined {
  const address = parseTcpTransport(endpoint.transport.tcp);
  if (address === undefined) {
    log.warn("Ignoring an endpoint with an unreadable address", {
      address: endpoint.transport.tcp,
    });
    return undefined;
  }
  return {
    instanceId: endpoint.instance_id,
    card,
    host: address.host,
    port: address.port,
    endpoint: address.endpoint,
    component: endpoint.component,
  };
}
