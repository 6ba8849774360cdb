import { Redis } from "ioredis";

export interface RedisClientOptions {
  url: string;
  /** Longest wait for one command; a hung Redis fails calls after this. */
  commandTimeoutMs: number;
  /** Send concurrent commands in one write (default true); see BENCHMARKS.md for what it buys. */
  autoPipelining?: boolean;
}

/**
 * An ioredis client tuned to fail fast: with Redis down, commands are refused at
 * once instead of queueing (no offline queue); with Redis hung, they time out.
 * It reconnects by itself, at most a second apart.
 */
export function createRedisClient(options: RedisClientOptions): Redis {
  return new Redis(options.url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    commandTimeout: options.commandTimeoutMs,
    connectTimeout: Math.max(options.commandTimeoutMs, 1000),
    maxRetriesPerRequest: 1,
    retryStrategy: (attempt: number) => Math.min(attempt * 100, 1000),
    // Concurrent calls share one write to the socket: fewer syscalls under load.
    enableAutoPipelining: options.autoPipelining ?? true,
  });
}
