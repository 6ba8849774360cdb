import type { AddressInfo, Socket } from "node:net";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import type { Config } from "./config.js";
import { createRestGateway } from "./gateway/rest-gateway.js";
import { createMetrics, type Metrics } from "./observability/metrics.js";
import { tracingInterceptor, tracingOn } from "./observability/tracing.js";
import { startHoldSweeper, type HoldSweeper } from "./queue/hold-sweeper.js";
import { challengeKeyKey, ticketKeyKey } from "./queue/keys.js";
import { Challenges } from "./tickets/challenges.js";
import { QueueStore } from "./queue/queue-store.js";
import { createDurabilityGate } from "./redis/durability.js";
import { evictingServers } from "./redis/eviction-policy.js";
import { createRedisClient } from "./redis/redis-client.js";
import { adminJwtVerifier, type AdminJwtVerifier } from "./rpc/admin-auth.js";
import type { JwtVerifier } from "./rpc/jwt-verifier.js";
import { userJwtVerifier } from "./rpc/user-identity.js";
import { createRpcSurface, MAX_REQUEST_BYTES, type RpcSurface } from "./rpc/rpc-surface.js";
import { BodyBudget } from "./server/body-budget.js";
import { createTicketQueueServer, DEFAULT_LIMITS, type ServerLimits, type TicketQueueServer } from "./server/server.js";
import { Tickets } from "./tickets/tickets.js";
import { connectChangeHub, type ChangeHub } from "./watch/change-hub.js";

/** The state of one process: Redis, the store and its scripts, tickets, the watch hub, the hold sweeper. */
export interface State {
  redis: Redis;
  store: QueueStore;
  tickets: Tickets;
  challenges: Challenges;
  hub: ChangeHub;
  sweeper: HoldSweeper;
  /** Stops the sweeper and the hub, and disconnects from Redis. */
  close(): Promise<void>;
}

export interface StateOptions {
  config: Config;
  /** The resolved Redis URL (unused with config.redisClusterNodes). */
  redisUrl: string;
  log: Logger;
  /** How often expired holds are swept; default 250 ms. */
  holdSweepMs?: number;
}

/**
 * config → Redis → store, tickets, watch hub, hold sweeper. The service runs
 * on it, and so does the bench's plain grpc-js server. Starts even when Redis
 * is down (Health reports it and the client reconnects by itself), except that
 * strict durability is checked against the server first.
 */
export async function buildState({ config, redisUrl, log, holdSweepMs }: StateOptions): Promise<State> {
  const redisOptions = { url: redisUrl, clusterNodes: config.redisClusterNodes, commandTimeoutMs: config.redisCommandTimeoutMs, autoPipelining: config.redisAutoPipelining };
  const redis = createRedisClient(redisOptions);
  redis.on("error", (err: Error) => log.warn({ err: err.message }, "redis connection error"));
  redis.on("ready", () => log.info("redis ready"));
  await redis.connect().catch((err: unknown) => log.warn({ err: String(err) }, "redis not reachable at start; retrying in the background"));
  // No acknowledgement the server cannot keep: a server unfit for strict mode stops the start.
  const durability = await createDurabilityGate(redis, config.durability, config.redisCommandTimeoutMs);
  log.info({ durability: durability.description }, "durability");
  // Once Redis answers (a Redis down at start must not hold the start up).
  const checkEviction = (): void =>
    void evictingServers(redis).then((servers) => {
      if (servers.length > 0) log.warn({ servers }, "Redis may evict keys (maxmemory-policy is not noeviction): people could silently drop out of the line");
    });
  if (redis.status === "ready") checkEviction();
  else redis.once("ready", checkEviction);
  const store = new QueueStore(redis, {
    prefix: config.keyPrefix,
    defaultCapacity: config.capacity,
    defaultMaxWaiting: config.maxWaiting,
    durability,
    onInvalidStored: oncePerMinute((event, fields) => log.warn({ event, fields }, "stored event fields hold invalid values: they read as 0")),
  });
  const tickets = new Tickets(redis, { configuredKey: config.ticketKey, redisKey: ticketKeyKey(config.keyPrefix), ttlSeconds: config.ticketTtlSeconds });
  const challenges = new Challenges(redis, challengeKeyKey(config.keyPrefix));
  const sweeper = startHoldSweeper(store, log, holdSweepMs);
  const hub = await connectChangeHub(redisOptions, store, log, config.watchUpdateMs);
  return {
    redis,
    store,
    tickets,
    challenges,
    hub,
    sweeper,
    async close() {
      await sweeper.stop();
      await hub.close();
      redis.disconnect();
    },
  };
}

/** `report` at most once a minute per event: every read of a damaged event would otherwise log a line. */
function oncePerMinute(report: (event: string, fields: string[]) => void): (event: string, fields: string[]) => void {
  const last = new Map<string, number>();
  return (event, fields) => {
    const now = Date.now();
    if (now - (last.get(event) ?? 0) < 60_000) return;
    if (last.size > 10_000) last.clear();
    last.set(event, now);
    report(event, fields);
  };
}

/** Every limit a process enforces: the transports' and the RPCs'. */
export interface Limits extends ServerLimits {
  maxStreams: number;
  maxWatchesPerUser: number;
  adminFailuresPerMinute: number;
}

export interface AppOptions extends StateOptions {
  adminToken: string;
  /** Default: built from config (ADMIN_JWT_PUBLIC_KEY or ADMIN_JWKS_URL). */
  adminJwt?: AdminJwtVerifier;
  /** Default: built from config (USER_JWT_PUBLIC_KEY or USER_JWKS_URL). */
  userJwt?: JwtVerifier;
  /** Overrides the limits config gives (tests make them small). */
  limits?: Partial<Limits>;
  /** The built browser app; default dist/web. */
  webDir?: string;
}

export interface App extends State {
  rpc: RpcSurface;
  server: TicketQueueServer;
  metrics: Metrics;
  /** Listens on the port itself (a single process). */
  listen(port: number, host?: string): Promise<AddressInfo>;
  /** Serves a connection accepted elsewhere (a cluster worker's). */
  accept(socket: Socket): void;
  /** Stops accepting, lets in-flight calls finish for up to `graceMs`, then closes everything. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * The one builder: config → state → the RPC surface → the REST gateway and the
 * transports on one port, the gateway mounted as the server's fallback. main,
 * the tests' service helper and the bench all build the service here.
 */
export async function buildApp(options: AppOptions): Promise<App> {
  const { config, log } = options;
  const state = await buildState(options);
  const limits: Limits = {
    ...DEFAULT_LIMITS,
    maxConnections: config.maxConnections,
    maxConnectionsPerIp: config.maxConnectionsPerIp,
    idleTimeoutMs: config.idleTimeoutMs,
    requestTimeoutMs: config.requestTimeoutMs,
    maxStreamsPerConnection: config.maxStreamsPerConnection,
    maxStreams: config.maxStreams,
    // Unary calls are short-lived: all HTTP/2 streams together get four times the streaming calls' budget.
    maxOpenStreams: config.maxStreams * 4,
    maxWatchesPerUser: config.maxWatchesPerUser,
    adminFailuresPerMinute: config.adminFailuresPerMinute,
    ...options.limits,
  };
  const metrics = createMetrics(state.store);
  const adminJwt = options.adminJwt ?? (await adminJwtVerifier({ publicKey: config.adminJwtPublicKey, jwksUrl: config.adminJwksUrl, issuer: config.adminJwtIssuer }));
  const rpc = createRpcSurface({
    store: state.store,
    tickets: state.tickets,
    challenges: state.challenges,
    hub: state.hub,
    adminToken: options.adminToken,
    adminJwt,
    userJwt: options.userJwt ?? userJwtVerifier(config),
    rateLimitPerMinute: config.rateLimitPerMinute,
    caller: { trustedProxies: new Set(config.trustedProxies), serviceTokens: config.serviceTokens },
    adminFailuresPerMinute: limits.adminFailuresPerMinute,
    maxStreams: limits.maxStreams,
    maxWatchesPerUser: limits.maxWatchesPerUser,
    metrics,
    tracing: tracingOn() ? tracingInterceptor() : undefined,
    log,
  });
  // The gateway reads bodies too: one budget for every path of the process.
  const bodyBudget = new BodyBudget(limits.maxBufferedRequestBytes);
  metrics.observeRequestBodies(() => bodyBudget);
  const gateway = createRestGateway(rpc, { maxBodyBytes: MAX_REQUEST_BYTES, bodyBudget });
  const server = createTicketQueueServer({
    rpc,
    fallback: (req, res) => void gateway(req, res),
    bodyBudget,
    endStreams: () => state.hub.close(),
    limits,
    metrics,
    metricsToken: config.metricsToken,
    corsOrigins: config.corsOrigins,
    webDir: options.webDir,
    log,
  });
  return {
    ...state,
    rpc,
    server,
    metrics,
    listen: (port, host) => server.listen(port, host),
    accept: (socket) => server.accept(socket),
    async stop(graceMs) {
      // Its events are let go while the connections drain.
      const released = state.sweeper.stop();
      await server.close(graceMs);
      await released;
      await state.close();
    },
  };
}
