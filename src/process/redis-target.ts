import type { Logger } from "pino";
import type { Config } from "../config.js";
import { isListening, startLocalRedis, type LocalRedis } from "../redis/local-redis.js";

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
