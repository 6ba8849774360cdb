import { Cluster, Redis, type Command } from "ioredis";
import { lateTimeout } from "./late-timeout.js";

export interface RedisClientOptions {
  url: string;
  /** REDIS_CLUSTER_NODES: seed nodes (host:port) of a Redis Cluster; when set, `url` is not used. */
  clusterNodes?: readonly string[];
  /** Longest wait for one command; a hung Redis fails calls after this. */
  commandTimeoutMs: number;
  /**
   * ioredis auto-pipelining: concurrent commands share one write (default false).
   * Measured here it bought no throughput and cost tail latency: each batch is a
   * new Pipeline object carrying a copy of every defined script, and with it on
   * about 7 times more bytes per scavenge reached the old generation (more and
   * longer GC pauses). See BENCHMARKS.md.
   */
  autoPipelining?: boolean;
  /** On a cluster: a subscriber connection per master for SSUBSCRIBE (the change hub's client). */
  shardedSubscribers?: boolean;
}

/**
 * An ioredis client tuned to fail fast: with Redis down, commands are refused at
 * once instead of queueing (no offline queue); with Redis hung, they time out.
 * It reconnects by itself, at most a second apart.
 *
 * With cluster nodes it is an ioredis Cluster. Every script names all its keys
 * and they share one hash tag, so each call goes to the master of its event's
 * slot; the few keyless commands (PING, INFO) go to any node. The Cluster is
 * returned under the Redis type because the store uses only commands both have.
 */
export function createRedisClient(options: RedisClientOptions): Redis {
  const common = {
    enableOfflineQueue: false,
    enableAutoPipelining: options.autoPipelining ?? false,
  };
  // (no commandTimeout: timeCommands times every command, see there)
  const perConnection = {
    connectTimeout: Math.max(options.commandTimeoutMs, 1000),
    maxRetriesPerRequest: 1,
  };
  if (options.clusterNodes && options.clusterNodes.length > 0) {
    const cluster = new Cluster(
      options.clusterNodes.map((node) => {
        const [host = "127.0.0.1", port = "6379"] = node.split(":");
        return { host, port: Number(port) };
      }),
      {
        ...common,
        lazyConnect: true,
        redisOptions: perConnection,
        clusterRetryStrategy: (attempt: number) => Math.min(attempt * 100, 1000),
        slotsRefreshTimeout: Math.max(options.commandTimeoutMs, 1000),
        shardedSubscribers: options.shardedSubscribers ?? false,
      },
    );
    // Each master's and replica's connection, as the cluster makes it: what the cluster routes
    // there and what goes to a node directly (durability's WAIT, CONFIG GET) alike.
    cluster.on("+node", (node: Redis) => timeCommands(node, options.commandTimeoutMs));
    return cluster as unknown as Redis;
  }
  const redis = new Redis(options.url, {
    ...common,
    ...perConnection,
    lazyConnect: true,
    retryStrategy: (attempt: number) => Math.min(attempt * 100, 1000),
  });
  timeCommands(redis, options.commandTimeoutMs);
  return redis;
}

/** Commands already timed (a cluster sends a redirected one to another node; a client, one unanswered at a reconnect again). */
const timed = new WeakSet<Command>();

/** Fails every command not answered within `ms`, as ioredis's `commandTimeout` does, but on a lateTimeout. */
function timeCommands(client: Redis, ms: number): void {
  const send = client.sendCommand.bind(client) as (command: Command, ...rest: unknown[]) => unknown;
  client.sendCommand = ((command: Command, ...rest: unknown[]) => {
    if (!timed.has(command)) {
      timed.add(command);
      const timer = lateTimeout(() => timeOut(command), ms);
      const done = (): void => clearTimeout(timer);
      command.promise.then(done, done);
    }
    return send(command, ...rest);
  }) as typeof client.sendCommand;
}

function timeOut(command: Command): void {
  if (!command.isResolved) command.reject(new Error("Command timed out"));
}
