import cluster, { type Worker } from "node:cluster";
import { randomBytes } from "node:crypto";
import { Socket } from "node:net";
import { pathToFileURL } from "node:url";
import type { Logger } from "pino";
import { ConfigError, loadConfig, type Config } from "./config.js";
import { createLogger, flushLog } from "./log.js";
import { startHoldSweeper } from "./queue/hold-sweeper.js";
import { ticketKeyKey } from "./queue/keys.js";
import { QueueStore } from "./queue/queue-store.js";
import { createDurabilityGate, DurabilityError } from "./redis/durability.js";
import { RedisUnavailableError } from "./redis/redis-errors.js";
import { createRedisClient } from "./redis/redis-client.js";
import { isListening, RedisNotInstalledError, startLocalRedis, type LocalRedis } from "./redis/local-redis.js";
import { createMetrics, serveClusterMetrics, shareWithPrimary } from "./observability/metrics.js";
import { adminJwtVerifier } from "./server/admin-auth.js";
import { ConnectionBalancer, CLOSED, CONNECTION, DRAINING, READY, whenReady } from "./server/connection-balancer.js";
import { createTicketQueueServer, type TicketQueueServer } from "./server/server.js";
import { Tickets } from "./tickets/tickets.js";
import { connectChangeHub } from "./watch/change-hub.js";

export interface RunningService {
  port: number;
  stop(): Promise<void>;
}

export interface RedisTarget {
  url: string;
  /** A redis-server this process started (development only); stopped on exit. */
  local: LocalRedis | undefined;
}

/** REDIS_URL; else a Redis on the dev port; else a redis-server child of ours. */
export async function resolveRedis(config: Config, log: Logger): Promise<RedisTarget> {
  if (config.redisClusterNodes.length > 0) return { url: "", local: undefined }; // the cluster's seed nodes are used instead
  if (config.redisUrl !== undefined) return { url: config.redisUrl, local: undefined };
  if (await isListening("127.0.0.1", config.devRedisPort)) return { url: `redis://127.0.0.1:${config.devRedisPort}`, local: undefined };
  const local = await startLocalRedis(config.devRedisPort, "data");
  log.info({ redis: local.url, dir: "data" }, "started a local redis-server (AOF on); it stops with the service");
  return { url: local.url, local };
}

/** Redis clients → store → server on the port. Exported so tests and tools can start the service in-process. */
export async function startService(config: Config, redisUrl: string, adminToken: string, log: Logger): Promise<RunningService> {
  const redisOptions = { url: redisUrl, clusterNodes: config.redisClusterNodes, commandTimeoutMs: config.redisCommandTimeoutMs, autoPipelining: config.redisAutoPipelining };
  const redis = createRedisClient(redisOptions);
  redis.on("error", (err: Error) => log.warn({ err: err.message }, "redis connection error"));
  redis.on("ready", () => log.info("redis ready"));
  // Start even when Redis is down: Health reports it and the client reconnects by itself.
  await redis.connect().catch((err: unknown) => log.warn({ err: String(err) }, "redis not reachable at start; retrying in the background"));

  // Strict durability is checked against the server before serving: no acknowledgement it cannot keep.
  const durability = await createDurabilityGate(redis, config.durability, config.redisCommandTimeoutMs);
  log.info({ durability: durability.description }, "durability");
  const store = new QueueStore(redis, {
    prefix: config.keyPrefix,
    defaultCapacity: config.capacity,
    durability,
    onInvalidStored: (event, fields) => log.warn({ event, fields }, "stored event fields hold invalid values: they read as 0"),
  });
  const tickets = new Tickets(redis, { configuredKey: config.ticketKey, redisKey: ticketKeyKey(config.keyPrefix), ttlSeconds: config.ticketTtlSeconds });
  const sweeper = startHoldSweeper(store, log);
  const hub = await connectChangeHub(redisOptions, store, log);
  const metrics = createMetrics(store);
  if (cluster.isWorker) shareWithPrimary(metrics.registry);
  const adminJwt = await adminJwtVerifier({ publicKey: config.adminJwtPublicKey, jwksUrl: config.adminJwksUrl, issuer: config.adminJwtIssuer });
  const server = createTicketQueueServer({
    limits: {
      maxConnections: config.maxConnections,
      maxConnectionsPerIp: config.maxConnectionsPerIp,
      idleTimeoutMs: config.idleTimeoutMs,
      requestTimeoutMs: config.requestTimeoutMs,
      maxStreams: config.maxStreams,
      maxStreamsPerConnection: config.maxStreamsPerConnection,
      maxWatchesPerUser: config.maxWatchesPerUser,
      adminFailuresPerMinute: config.adminFailuresPerMinute,
    },
    metrics,
    adminJwt,
    store,
    tickets,
    hub,
    adminToken,
    log,
    corsOrigins: config.corsOrigins,
    metricsToken: config.metricsToken,
    rateLimit: { perMinute: config.rateLimitPerMinute, trustedProxies: new Set(config.trustedProxies), serviceTokens: config.serviceTokens },
  });
  // A cluster worker serves the connections its primary hands over; a single process listens itself.
  const port = cluster.isWorker ? serveHandedOver(server, config.port) : (await server.listen(config.port, config.host)).port;
  log.info({ port, host: config.host, capacity: config.capacity }, "ticket-queue listening (gRPC, gRPC-web, Connect, REST)");
  if (cluster.isWorker) process.send?.({ type: READY });
  // Loads the ticket key now rather than on the first Reserve (retried then if Redis is not up yet).
  tickets.signingLibrary().then(
    (library) => log.info({ library }, "ticket signing key loaded"),
    () => undefined,
  );

  return {
    port,
    async stop() {
      sweeper.stop();
      // However the stop came (the primary, or a signal to this worker alone), no new connections come here.
      if (cluster.isWorker) process.send?.({ type: DRAINING });
      await server.close();
      redis.disconnect();
    },
  };
}

/** In a worker: takes the connections the primary sends, and tells it when each closes. */
function serveHandedOver(server: TicketQueueServer, port: number): number {
  process.on("message", (message: { type?: string }, handle: unknown) => {
    if (message.type !== CONNECTION || !(handle instanceof Socket)) return;
    handle.once("close", () => process.send?.({ type: CLOSED }));
    server.accept(handle);
  });
  return port;
}

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err: unknown) {
    if (err instanceof ConfigError) {
      process.stderr.write(`ticket-queue: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  const log = createLogger(config.logLevel);
  let adminToken = config.adminToken;
  if (adminToken === undefined) {
    adminToken = randomBytes(24).toString("base64url");
    // Printed once to stderr, never into the JSON log.
    process.stderr.write(`ADMIN_TOKEN is not set; this run's admin token is: ${adminToken}\n`);
  }

  if (cluster.isWorker) return runProcess(config, { url: config.redisUrl ?? "", local: undefined }, adminToken, log);
  if (process.env["npm_lifecycle_event"] === "start") stopWhenOrphaned(log);

  let redis: RedisTarget;
  try {
    redis = await resolveRedis(config, log);
  } catch (err: unknown) {
    if (err instanceof RedisNotInstalledError) {
      process.stderr.write(`ticket-queue: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  if (config.workers <= 1) return runProcess(config, redis, adminToken, log);
  // Checked once here too, so that a server unfit for strict mode stops the start
  // instead of sending the workers into a crash loop.
  if (config.durability === "strict") {
    const probe = createRedisClient({ url: redis.url, clusterNodes: config.redisClusterNodes, commandTimeoutMs: config.redisCommandTimeoutMs });
    try {
      await probe.connect();
      await createDurabilityGate(probe, "strict", config.redisCommandTimeoutMs);
    } catch (err: unknown) {
      process.stderr.write(`ticket-queue: ${err instanceof Error ? err.message : String(err)}\n`);
      await redis.local?.stop();
      process.exit(1);
    } finally {
      probe.disconnect();
    }
  }
  runPrimary(config, redis, adminToken, log);
}

/** One process serving the port: the only one, or a cluster worker. */
async function runProcess(config: Config, redis: RedisTarget, adminToken: string, log: Logger): Promise<void> {
  let service: RunningService;
  try {
    service = await startService(config, redis.url, adminToken, log);
  } catch (err: unknown) {
    if (err instanceof DurabilityError || (config.durability === "strict" && err instanceof RedisUnavailableError)) {
      process.stderr.write(`ticket-queue: ${err.message}\n`);
      await redis.local?.stop();
      process.exit(1);
    }
    throw err;
  }
  onStopSignal(log, async () => {
    await service.stop();
    await redis.local?.stop();
  });
  // A worker whose primary died exits at once (Node's cluster does that on disconnect);
  // one already draining may first fail to tell the dead primary that its listener
  // closed (EPIPE), which is no reason to crash with a stack trace.
  cluster.worker?.on("error", (err: unknown) => log.warn({ err }, "lost the channel to the primary"));
}

/**
 * V8 flags for each WORKER_GC. With a worker per core, V8's parallel GC helpers take
 * cores from the other workers and Redis, and concurrent marking added long pauses;
 * freeing dead ArrayBuffers, about half of a scavenge when done in the pause, is left
 * to V8's background sweeper. Measured on 2 cores at 6,000 gRPC Reserve/s (BENCHMARKS.md):
 * scavenges 1.0 ms against 2.0 ms with --single-threaded-gc. --no-parallel-marking is
 * not among them: Node 20's V8 aborts with it.
 */
const WORKER_GC_FLAGS: Record<Config["workerGc"], string[]> = {
  serial: ["--no-parallel-scavenge", "--no-parallel-compaction", "--no-parallel-pointer-update", "--no-concurrent-marking"],
  "single-threaded": ["--single-threaded-gc"],
  parallel: [],
};

/**
 * WORKERS > 1: a primary that forks the workers (they share the port and
 * nothing but Redis), replaces any that die, rolls them one by one on SIGHUP
 * (a new one listens before the old one drains), and on SIGTERM stops them all.
 */
function runPrimary(config: Config, redis: RedisTarget, adminToken: string, log: Logger): void {
  serveClusterMetrics();
  // Workers read the resolved Redis and the token from their environment.
  const env = { REDIS_URL: redis.url, ADMIN_TOKEN: adminToken };
  const balancer = new ConnectionBalancer(config.maxConnections);
  cluster.setupPrimary({ execArgv: [...process.execArgv, ...WORKER_GC_FLAGS[config.workerGc]] });
  const fork = (): Worker => {
    const worker = cluster.fork(env);
    balancer.add(worker);
    return worker;
  };
  let stopping = false;
  const retiring = new Set<number>();
  for (let i = 0; i < config.workers; i++) fork();
  cluster.on("exit", (worker, code, signal) => {
    if (stopping || retiring.delete(worker.id)) return;
    log.warn({ pid: worker.process.pid, code, signal }, "worker died; starting another");
    fork();
  });
  log.info({ workers: config.workers }, "primary started its workers");
  // The port opens once a worker can take what arrives on it.
  void balancer.firstReady.then(() =>
    balancer.listen(config.port, config.host).then(
      (address) => log.info({ port: address.port, workers: config.workers }, "primary hands each new connection to the worker with the fewest"),
      (err: unknown) => {
        log.error({ err }, "cannot listen");
        process.kill(process.pid, "SIGTERM");
      },
    ),
  );

  let rolling = false;
  process.on("SIGHUP", () => {
    if (rolling || stopping) return;
    rolling = true;
    void (async () => {
      log.info("SIGHUP: replacing the workers one by one");
      for (const old of Object.values(cluster.workers ?? {})) {
        if (!old || old.isDead() || stopping || retiring.has(old.id)) continue;
        if (!(await whenReady(fork()))) {
          log.warn({ pid: old.process.pid }, "the new worker died before it was ready; keeping the old one");
          continue;
        }
        retiring.add(old.id);
        balancer.retire(old);
        // The old worker sends GOAWAY, finishes its calls and exits.
        await new Promise<void>((resolve) => {
          old.once("exit", () => resolve());
          old.process.kill("SIGTERM");
        });
      }
      log.info("rolling restart done");
      rolling = false;
    })();
  });
  onStopSignal(log, async () => {
    stopping = true;
    void balancer.close(); // no new connections; the open ones drain in their workers
    const exits = Object.values(cluster.workers ?? {}).map(
      (worker) =>
        new Promise<void>((resolve) => {
          if (!worker || worker.isDead()) return resolve();
          worker.once("exit", () => resolve());
          worker.process.kill("SIGTERM");
        }),
    );
    await Promise.all(exits);
    await redis.local?.stop();
  });
}

/**
 * Under `npm start` the service is npm's child: a supervisor that stops npm
 * stops the service (npm forwards SIGTERM; the script execs node, so no shell
 * sits between them). If npm itself is killed outright (-9), the service is
 * reparented: it then stops as if it had been sent SIGTERM.
 */
function stopWhenOrphaned(log: Logger): void {
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    log.warn({ parent }, "npm, which started this service, is gone: stopping");
    process.kill(process.pid, "SIGTERM");
  }, 1000);
  timer.unref();
}

function onStopSignal(log: Logger, stop: () => Promise<void>): void {
  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "draining in-flight calls, then stopping");
    stop().then(
      () => {
        log.info("stopped");
        void flushLog(log, 1000).then(() => process.exit(0));
      },
      (err: unknown) => {
        log.error({ err }, "unclean stop");
        void flushLog(log, 1000).then(() => process.exit(1));
      },
    );
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  void main();
}
