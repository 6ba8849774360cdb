import { randomBytes } from "node:crypto";
import { pathToFileURL } from "node:url";
import type { Logger } from "pino";
import { ConfigError, loadConfig, type Config } from "./config.js";
import { createLogger } from "./log.js";
import { startHoldSweeper } from "./queue/hold-sweeper.js";
import { ticketKeyKey } from "./queue/keys.js";
import { QueueStore } from "./queue/queue-store.js";
import { createRedisClient } from "./redis/redis-client.js";
import { isListening, RedisNotInstalledError, startLocalRedis, type LocalRedis } from "./redis/local-redis.js";
import { createTicketQueueServer } from "./server/server.js";
import { Tickets } from "./tickets/tickets.js";
import { connectChangeHub } from "./watch/change-hub.js";

export interface RunningService {
  port: number;
  stop(): Promise<void>;
}

/** Config → Redis → server. Exported so tests and tools can start the service in-process. */
export async function startService(config: Config, adminToken: string, log: Logger): Promise<RunningService> {
  let localRedis: LocalRedis | undefined;
  let redisUrl = config.redisUrl;
  if (redisUrl === undefined) {
    if (await isListening("127.0.0.1", config.devRedisPort)) {
      redisUrl = `redis://127.0.0.1:${config.devRedisPort}`;
    } else {
      localRedis = await startLocalRedis(config.devRedisPort, "data");
      redisUrl = localRedis.url;
      log.info({ redis: redisUrl, dir: "data" }, "started a local redis-server (AOF on); it stops with the service");
    }
  }

  const redis = createRedisClient({ url: redisUrl, commandTimeoutMs: config.redisCommandTimeoutMs });
  redis.on("error", (err: Error) => log.warn({ err: err.message }, "redis connection error"));
  redis.on("ready", () => log.info("redis ready"));
  // Start even when Redis is down: Health reports it and the client reconnects by itself.
  await redis.connect().catch((err: unknown) => log.warn({ err: String(err) }, "redis not reachable at start; retrying in the background"));

  const store = new QueueStore(redis, { prefix: config.keyPrefix, defaultCapacity: config.capacity });
  const tickets = new Tickets(redis, { configuredKey: config.ticketKey, redisKey: ticketKeyKey(config.keyPrefix), ttlSeconds: config.ticketTtlSeconds });
  const sweeper = startHoldSweeper(store, log);
  const hub = await connectChangeHub(redisUrl, config.redisCommandTimeoutMs, store, log);
  const server = createTicketQueueServer({ store, tickets, hub, adminToken, log });
  const address = await server.listen(config.port, config.host);
  log.info({ port: address.port, host: config.host, capacity: config.capacity }, "ticket-queue listening (gRPC, gRPC-web, Connect, REST)");

  return {
    port: address.port,
    async stop() {
      sweeper.stop();
      await server.close();
      redis.disconnect();
      await localRedis?.stop();
    },
  };
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

  let service: RunningService;
  try {
    service = await startService(config, adminToken, log);
  } catch (err: unknown) {
    if (err instanceof RedisNotInstalledError) {
      process.stderr.write(`ticket-queue: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }

  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "draining in-flight calls, then stopping");
    service.stop().then(
      () => {
        log.info("stopped");
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err }, "unclean stop");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  void main();
}
