import calculateSlot from "cluster-key-slot";
import type { Cluster, Redis } from "ioredis";
import { callRedis, RedisUnavailableError } from "./redis-errors.js";

export type DurabilityMode = "fast" | "strict";

export class DurabilityError extends Error {
  override readonly name = "DurabilityError";
}

/** Waits after writes until they are durable; a no-op in fast mode. */
export interface DurabilityGate {
  /**
   * Resolves once every write sent before it on the connection that wrote `key`
   * is on disk (and on a replica, when there are any).
   */
  afterWrite(key: string): Promise<void>;
  readonly description: string;
}

/**
 * DURABILITY=strict: a write is acknowledged only once it is on disk and, when
 * replicas are attached, on one of them.
 *
 * Redis 7.2+ and Valkey have WAITAOF (local fsync and replicas in one command).
 * Older servers (Debian's 7.0 here) have not: then the server must run
 * `appendonly yes` with `appendfsync always` (every write is fsynced before
 * Redis answers it), checked at start, and WAIT covers the replicas. WAIT and
 * WAITAOF only cover writes made on their own connection, so they are sent on
 * the same connection as the scripts, one per batch of concurrent writes.
 */
export async function createDurabilityGate(redis: Redis, mode: DurabilityMode, timeoutMs: number): Promise<DurabilityGate> {
  if (mode === "fast") return { afterWrite: () => Promise.resolve(), description: "fast: AOF as the server is configured" };
  if (redis.isCluster) return clusterGate(redis as unknown as Cluster, timeoutMs);
  return nodeGate(redis, timeoutMs);
}

/**
 * On a Redis Cluster each master has its own connection (ioredis keeps one per
 * node): a write is made durable by a gate on the connection of the master that
 * holds its key's slot. Every master is checked at start; a master that appears
 * later (a promoted replica) is checked on its first write.
 */
async function clusterGate(cluster: Cluster, timeoutMs: number): Promise<DurabilityGate> {
  const gates = new WeakMap<Redis, Promise<DurabilityGate>>();
  const gateOf = (node: Redis): Promise<DurabilityGate> => {
    let gate = gates.get(node);
    if (!gate) {
      gate = nodeGate(node, timeoutMs);
      gates.set(node, gate);
      gate.catch(() => gates.delete(node)); // checked again on the next write
    }
    return gate;
  };
  const masters = cluster.nodes("master");
  if (masters.length === 0) throw new RedisUnavailableError("redis is unavailable: the cluster has no master yet");
  const descriptions = await Promise.all(masters.map(async (node) => (await gateOf(node)).description));
  return {
    description: `${descriptions[0] ?? "strict"}, per master of the cluster (${masters.length})`,
    async afterWrite(key) {
      const address = cluster.slots[calculateSlot(key)]?.[0];
      const node = cluster.nodes("master").find((n) => `${n.options.host ?? ""}:${n.options.port ?? 0}` === address);
      if (!node) throw new RedisUnavailableError("redis is unavailable: no master holds the slot of the write");
      await (await gateOf(node)).afterWrite(key);
    },
  };
}

/** The gate on one server's connection. */
async function nodeGate(redis: Redis, timeoutMs: number): Promise<DurabilityGate> {
  const hasWaitAof = await callRedis(() => redis.call("COMMAND", "INFO", "WAITAOF")).then(
    (info) => Array.isArray(info) && info[0] !== null,
    () => false,
  );
  if (!hasWaitAof) {
    const [, appendonly] = (await callRedis(() => redis.config("GET", "appendonly"))) as string[];
    const [, appendfsync] = (await callRedis(() => redis.config("GET", "appendfsync"))) as string[];
    if (appendonly !== "yes" || appendfsync !== "always") {
      throw new DurabilityError(
        `DURABILITY=strict needs WAITAOF (Redis 7.2+) or a server with appendonly yes and appendfsync always; this one has appendonly ${String(appendonly)}, appendfsync ${String(appendfsync)}`,
      );
    }
  }

  // The replica count is read at most once a second, not per write.
  let replicas = await connectedReplicas(redis);
  let replicasReadAt = Date.now();
  const currentReplicas = async (): Promise<number> => {
    if (Date.now() - replicasReadAt > 1000) {
      replicasReadAt = Date.now();
      replicas = await connectedReplicas(redis);
    }
    return replicas;
  };
  // Concurrent writes share one WAIT: it is sent after all of them on the connection.
  let pending: Promise<void> | undefined;
  const waitOnce = async (): Promise<void> => {
    const replicas = await currentReplicas();
    if (hasWaitAof) {
      const [local, copies] = (await callRedis(() => redis.call("WAITAOF", "1", String(replicas > 0 ? 1 : 0), String(timeoutMs)))) as number[];
      if (local !== 1 || (replicas > 0 && (copies ?? 0) < 1)) throw new RedisUnavailableError("redis is unavailable: the write is not yet durable (WAITAOF timed out)");
      return;
    }
    if (replicas === 0) return; // appendfsync always: on disk before Redis answered
    const acked = Number(await callRedis(() => redis.call("WAIT", "1", String(timeoutMs))));
    if (acked < 1) throw new RedisUnavailableError("redis is unavailable: no replica acknowledged the write in time");
  };
  return {
    description: hasWaitAof ? "strict: WAITAOF after each batch of writes" : "strict: appendfsync always, WAIT for replicas",
    afterWrite() {
      pending ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
        pending = undefined;
        return waitOnce();
      });
      return pending;
    },
  };
}

async function connectedReplicas(redis: Redis): Promise<number> {
  const info = await callRedis(() => redis.info("replication"));
  return Number(/^connected_slaves:(\d+)/m.exec(info)?.[1] ?? 0);
}
