import cluster from "node:cluster";
import { randomBytes } from "node:crypto";
import { pathToFileURL } from "node:url";
import { ConfigError, loadConfig, type Config } from "./config.js";
import { createLogger } from "./log.js";
import { runPrimary } from "./process/primary.js";
import { resolveRedis, type RedisTarget } from "./process/redis-target.js";
import { serve } from "./process/serve.js";
import { stopWhenOrphaned } from "./process/signals.js";
import { createDurabilityGate } from "./redis/durability.js";
import { RedisNotInstalledError } from "./redis/local-redis.js";
import { createRedisClient } from "./redis/redis-client.js";

/**
 * The entry point: read the configuration, find (or start) Redis, then either
 * serve the port in this process (WORKERS=1, or a cluster worker) or supervise
 * the workers (the cluster primary).
 */
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

  if (cluster.isWorker) return serve(config, { url: config.redisUrl ?? "", local: undefined }, adminToken, log);
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
  if (config.workers <= 1) return serve(config, redis, adminToken, log);
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

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  // Anything else that stops the start: one line, not an unhandled rejection's trace.
  main().catch((err: unknown) => {
    process.stderr.write(`ticket-queue: cannot start: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
