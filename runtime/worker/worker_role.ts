import { hostname } from "node:os";
import type { DiscoveryBackend } from "../discovery/mod.ts";
import type { Engine, EngineAvailability, EngineInfo } from "../engines/mod.ts";
import { DynamoError } from "../errors/mod.ts";
import {
  KvEventBatcher,
  KvEventRelay,
  registerKvEventEndpoints,
  VllmKvEventSubscriber,
} from "../kv_events/mod.ts";
import { Logger } from "../observability/mod.ts";
import {
  BUCKETS,
  discoveryKey,
  type EngineRequest,
  EngineRequestSchema,
  MODEL_TYPE,
  type ModelCard,
  type WorkerLoad,
  type WorkerRole,
} from "../protocol/mod.ts";
import {
  componentSubject,
  EventPublisher,
  namespaceSubject,
  registerEventChannel,
  RequestPlaneServer,
} from "../transport/mod.ts";
import { type Clock, randomInstanceId } from "../util/mod.ts";

const log = new Logger("worker");

/** Event-plane topics a worker publishes (Dynamo's names). */
export const TOPICS = { load: "kv_metrics", kvEvents: "kv-events" } as const;

export interface WorkerConfig {
  readonly namespace: string;
  readonly component: string;
  readonly endpoint: string;
  readonly modelName: string;
  readonly modelPath: string;
  /** Directory with tokenizer.json / tokenizer_config.json. */
  readonly tokenizerDir: string;
  readonly role: WorkerRole;
  /** Host the request plane and event publisher bind (may be 0.0.0.0). */
  readonly host: string;
  /** Host other processes use to reach this worker (a routable address, never 0.0.0.0). */
  readonly advertiseHost: string;
  /** Largest request-plane frame, in bytes. */
  readonly maxFrameBytes: number;
  readonly port: number;
  readonly loadIntervalMs: number;
  readonly drainTimeoutMs: number;
  /**
   * A vLLM-format ZMQ KV-event publisher to take this worker's KV events from (a vLLM
   * started with `--kv-events-config`; `endpoint` may use `*` for this host). Default: the
   * engine's own `kvEventSource()`, else its `onKvEvents` listener.
   */
  readonly kvEvents?: WorkerKvEventSource;
}

/** Where a worker subscribes for an engine's KV events in vLLM's ZMQ format. */
export interface WorkerKvEventSource {
  readonly endpoint: string;
  /** Topic prefix to subscribe to. Default "". */
  readonly topic?: string;
  /** The engine's replay (ROUTER) endpoint, for filling gaps. */
  readonly replayEndpoint?: string;
  /** Where the engine's batch sequence starts (see VllmKvEventSubscriberOptions). */
  readonly sequenceStart?: "zero" | "first_seen";
}

export interface WorkerDeps {
  readonly discovery: DiscoveryBackend;
  readonly engine: Engine;
  readonly clock: Clock;
  /** The engine's EOS ids for the model card. */
  readonly eosTokenIds: readonly number[];
}

/**
 * One engine instance made reachable: serves the request plane, publishes load and KV
 * events on the event plane, and registers its endpoint and model card in discovery only
 * once the engine is ready. `shutdown()` deregisters first, then drains, then stops.
 */
export class WorkerRoleHandle {
  readonly instanceId: number;
  readonly #deps: WorkerDeps;
  readonly #config: WorkerConfig;
  readonly #server: RequestPlaneServer;
  readonly #publisher: EventPublisher;
  readonly #relay: KvEventRelay;
  /** Event-channel keys: registered once, for the worker's whole life. */
  readonly #channelKeys: RegisteredKey[];
  /** Model and endpoint keys: withdrawn while the engine is down. */
  readonly #servingKeys: RegisteredKey[];
  readonly #stopLoad: () => void;
  #info: EngineInfo;
  #stopKv: () => Promise<void>;
  #serving = true;
  #stopAvailability: () => void = () => {};
  #transitions: Promise<void> = Promise.resolve();
  #closed: Promise<void> | undefined;

  private constructor(init: {
    instanceId: number;
    info: EngineInfo;
    deps: WorkerDeps;
    config: WorkerConfig;
    server: RequestPlaneServer;
    publisher: EventPublisher;
    relay: KvEventRelay;
    channelKeys: RegisteredKey[];
    servingKeys: RegisteredKey[];
    stopLoad: () => void;
    stopKv: () => Promise<void>;
  }) {
    this.instanceId = init.instanceId;
    this.#info = init.info;
    this.#deps = init.deps;
    this.#config = init.config;
    this.#server = init.server;
    this.#publisher = init.publisher;
    this.#relay = init.relay;
    this.#channelKeys = init.channelKeys;
    this.#servingKeys = init.servingKeys;
    this.#stopLoad = init.stopLoad;
    this.#stopKv = init.stopKv;
  }

  /** What the engine reported when it last became ready (it goes into the model card). */
  get info(): EngineInfo {
    return this.#info;
  }

  /** False while the engine is down and the worker is out of discovery. */
  get serving(): boolean {
    return this.#serving;
  }

  /** Address of the request plane, `host:port`. */
  get address(): string {
    return `${hostForAddress(this.#config.advertiseHost)}:${this.#server.port}`;
  }

  static async start(deps: WorkerDeps, config: WorkerConfig): Promise<WorkerRoleHandle> {
    const instanceId = randomInstanceId();
    const server = await RequestPlaneServer.listen({
      host: config.host,
      port: config.port,
      maxFrameBytes: config.maxFrameBytes,
    });
    const publisher = await EventPublisher.bind({
      host: config.host,
      advertiseHost: config.advertiseHost,
      publisherId: instanceId,
    }).catch(async (err) => {
      await server.close({ drainMs: 0 });
      throw err;
    });
    let stopKv = (): Promise<void> => Promise.resolve();
    // Availability changes can come as soon as the engine is up: held until registered.
    const early: EngineAvailability[] = [];
    let follow: ((change: EngineAvailability) => void) | undefined;
    const stopAvailability = deps.engine.onAvailability?.((change) => {
      if (follow === undefined) early.push(change);
      else follow(change);
    }) ?? (() => {});
    try {
      server.register(
        config.endpoint,
        (payload, ctx) => generate(deps.engine, payload, ctx.signal),
      );
      const subject = componentSubject(config.namespace, config.component, TOPICS.kvEvents);
      const relay = new KvEventRelay({
        workerId: instanceId,
        publish: (event) => publisher.publish(subject, event),
      });
      registerKvEventEndpoints(server, relay);
      const info = await deps.engine.start();
      stopKv = relayKvEvents(deps.engine, relay, config, info);
      const stopLoad = publishLoad(deps, publisher, config, instanceId);
      const channelKeys = await registerChannels(deps, config, { instanceId, publisher });
      const servingKeys = await registerServing(deps, config, { instanceId, info, server });
      log.info("Worker ready", {
        model: config.modelName,
        instance_id: instanceId.toString(16),
        address: `${config.advertiseHost}:${server.port}`,
        engine: info.kind,
      });
      const handle = new WorkerRoleHandle({
        instanceId,
        info,
        deps,
        config,
        server,
        publisher,
        relay,
        channelKeys,
        servingKeys,
        stopLoad,
        stopKv,
      });
      handle.#stopAvailability = stopAvailability;
      follow = (change) => handle.#onAvailability(change);
      for (const change of early.splice(0)) follow(change);
      return handle;
    } catch (err) {
      stopAvailability();
      await stopKv();
      await server.close({ drainMs: 0 });
      await publisher.close();
      throw err;
    }
  }

  /** Applies engine restarts in order: out of discovery while down, back in once ready. */
  #onAvailability(change: EngineAvailability): void {
    this.#transitions = this.#transitions
      .then(() => this.#applyAvailability(change))
      .catch((err) => log.error("Cannot follow the engine's restart", { error: err }));
  }

  async #applyAvailability(change: EngineAvailability): Promise<void> {
    if (this.#closed !== undefined) return;
    if (change.state === "ready") {
      this.#info = change.info;
      await this.#stopKv();
      this.#stopKv = relayKvEvents(this.#deps.engine, this.#relay, this.#config, change.info);
      await registerServing(this.#deps, this.#config, {
        instanceId: this.instanceId,
        info: change.info,
        server: this.#server,
      });
      this.#serving = true;
      log.info("Engine ready again; worker registered", {
        instance_id: this.instanceId.toString(16),
      });
      return;
    }
    if (this.#serving) {
      this.#serving = false;
      await this.#deregister(this.#servingKeys);
      log.warn("Engine is down; worker deregistered until it is ready again", {
        instance_id: this.instanceId.toString(16),
        reason: change.state === "down" ? change.reason : change.error.message,
      });
      // The engine's cache died with it: routers drop this worker's blocks.
      await this.#stopKv();
      this.#stopKv = () => Promise.resolve();
      this.#relay.relay({ data: "cleared", dp_rank: 0 });
    }
  }

  async #deregister(keys: readonly RegisteredKey[]): Promise<void> {
    for (const { bucket, key } of keys) {
      await this.#deps.discovery.delete(bucket as never, key).catch((err) =>
        log.warn("Cannot deregister", { key, error: err })
      );
    }
  }

  /** Deregisters, drains in-flight requests (bounded), stops the engine. Idempotent. */
  shutdown(): Promise<void> {
    this.#closed ??= this.#shutdown();
    return this.#closed;
  }

  async #shutdown(): Promise<void> {
    log.info("Worker shutting down: deregistering, then draining", {
      inflight: this.#server.inflightStreams,
      drain_timeout_ms: this.#config.drainTimeoutMs,
    });
    this.#stopAvailability();
    await this.#transitions;
    // Model and endpoint go first so no new request is routed here.
    await this.#deregister([...(this.#serving ? this.#servingKeys : []), ...this.#channelKeys]);
    this.#serving = false;
    await this.#server.close({ drainMs: this.#config.drainTimeoutMs });
    this.#stopLoad();
    await this.#stopKv();
    await this.#deps.engine.stop();
    await this.#publisher.close();
    log.info("Worker stopped", { instance_id: this.instanceId.toString(16) });
  }
}

async function* generate(engine: Engine, payload: unknown, signal: AbortSignal) {
  const parsed = EngineRequestSchema.safeParse(payload);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new DynamoError(
      "invalid_request",
      "invalid_engine_request",
      `Invalid engine request at ${issue.path.join(".") || "(root)"}: ${issue.message}`,
    );
  }
  yield* engine.generate(parsed.data as EngineRequest, signal);
}

interface RegisteredKey {
  readonly bucket: string;
  readonly key: string;
}

/** The worker's event channels (load and KV events), for its whole life. */
async function registerChannels(
  deps: WorkerDeps,
  config: WorkerConfig,
  parts: { instanceId: number; publisher: EventPublisher },
): Promise<RegisteredKey[]> {
  const { instanceId, publisher } = parts;
  const keys: RegisteredKey[] = [];
  for (const topic of [TOPICS.load, TOPICS.kvEvents]) {
    await registerEventChannel(deps.discovery, {
      namespace: config.namespace,
      component: config.component,
      topic,
      instanceId,
      endpoint: publisher.endpoint,
    });
    keys.push({
      bucket: BUCKETS.eventChannels,
      key: discoveryKey(config.namespace, config.component, topic, instanceId),
    });
  }
  return keys;
}

/**
 * The endpoint and the model card: what makes frontends route here. Returned model first,
 * the order to withdraw them in.
 */
async function registerServing(
  deps: WorkerDeps,
  config: WorkerConfig,
  parts: { instanceId: number; info: EngineInfo; server: RequestPlaneServer },
): Promise<RegisteredKey[]> {
  const { instanceId, info, server } = parts;
  const proc = { hostname: hostname(), pid: Deno.pid };
  const key = discoveryKey(config.namespace, config.component, config.endpoint, instanceId);
  await deps.discovery.put(BUCKETS.instances, key, {
    type: "Endpoint",
    namespace: config.namespace,
    component: config.component,
    endpoint: config.endpoint,
    instance_id: instanceId,
    transport: {
      tcp: `${server.host}:${server.port}/${instanceId.toString(16)}/${config.endpoint}`,
    },
    ...proc,
  });
  await deps.discovery.put(BUCKETS.models, key, {
    type: "Model",
    namespace: config.namespace,
    component: config.component,
    endpoint: config.endpoint,
    instance_id: instanceId,
    card_json: modelCard(deps, config, info),
    ...proc,
  });
  return [{ bucket: BUCKETS.models, key }, { bucket: BUCKETS.instances, key }];
}

function modelCard(deps: WorkerDeps, config: WorkerConfig, info: EngineInfo): ModelCard {
  return {
    display_name: config.modelName,
    source_path: config.modelPath,
    tokenizer_dir: config.tokenizerDir,
    chat_template_file: `${config.tokenizerDir}/tokenizer_config.json`,
    context_length: info.contextLengthTokens,
    kv_cache_block_size: info.blockSizeTokens,
    model_type: config.role === "prefill"
      ? MODEL_TYPE.prefill
      : MODEL_TYPE.chat | MODEL_TYPE.completions,
    engine: info.kind,
    role: config.role,
    eos_token_ids: [...deps.eosTokenIds],
    runtime_config: {
      total_kv_blocks: info.totalKvBlocks,
      max_num_seqs: info.maxNumSeqs,
      max_num_batched_tokens: info.maxNumBatchedTokens,
      data_parallel_size: 1,
    },
  };
}

function publishLoad(
  deps: WorkerDeps,
  publisher: EventPublisher,
  config: WorkerConfig,
  instanceId: number,
): () => void {
  const subject = namespaceSubject(config.namespace, TOPICS.load);
  const tick = (): void => {
    const load: WorkerLoad = { worker_id: instanceId, dp_rank: 0, ...deps.engine.load() };
    publisher.publish(subject, load);
  };
  tick();
  const timer = setInterval(tick, config.loadIntervalMs);
  Deno.unrefTimer(timer);
  return () => clearInterval(timer);
}

/**
 * Feeds the engine's KV events to the relay (ids from 1, ring buffer, event plane). From a
 * vLLM-format ZMQ publisher when there is one (the configured one, else the engine's own),
 * the path a real vLLM's events take; otherwise from `onKvEvents`, through the same
 * merging and dedup. Returns what stops it.
 */
function relayKvEvents(
  engine: Engine,
  relay: KvEventRelay,
  config: WorkerConfig,
  info: EngineInfo,
): () => Promise<void> {
  const source = config.kvEvents ?? engine.kvEventSource?.();
  if (source !== undefined) {
    const subscriber = new VllmKvEventSubscriber({
      endpoint: source.endpoint,
      topic: source.topic,
      replayEndpoint: source.replayEndpoint,
      sequenceStart: source.sequenceStart,
      blockSizeTokens: info.blockSizeTokens,
      onEvents: (updates) => relay.relayAll(updates),
    });
    log.info("Relaying KV events from a vLLM-format publisher", {
      endpoint: subscriber.endpoint,
      replay: source.replayEndpoint ?? "none",
    });
    return () => subscriber.close();
  }
  const batcher = new KvEventBatcher({ emit: (update) => relay.relay(update) });
  const unsubscribe = engine.onKvEvents((events) => {
    for (const { data, dp_rank } of events) batcher.push({ data, dp_rank });
    batcher.flush();
  });
  return () => {
    unsubscribe();
    return Promise.resolve();
  };
}

/** IPv6 literals go in brackets in `host:port` addresses. */
function hostForAddress(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}
