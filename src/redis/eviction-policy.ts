import type { Cluster, Redis } from "ioredis";
import { callRedis } from "./redis-errors.js";

/**
 * The servers whose maxmemory-policy would let Redis evict keys: an evicted
 * waiting set drops people from the line without a word. Answers "host:port
 * policy" for each such server (each master of a cluster), or for a server
 * where the policy cannot be read (CONFIG renamed or refused, as managed
 * services do) "host:port unknown (reason)".
 */
export async function evictingServers(redis: Redis | Cluster): Promise<string[]> {
  const nodes = "nodes" in redis && redis.isCluster ? redis.nodes("master") : [redis as Redis];
  const found = await Promise.all(
    nodes.map(async (node) => {
      const where = `${node.options.host ?? "?"}:${node.options.port ?? "?"}`;
      try {
        const reply = await callRedis(() => node.config("GET", "maxmemory-policy"));
        const policy = Array.isArray(reply) ? String(reply[1] ?? "") : "";
        return policy === "noeviction" ? [] : [`${where} ${policy || "unknown"}`];
      } catch (err: unknown) {
        return [`${where} unknown (${err instanceof Error ? err.message : String(err)})`];
      }
    }),
  );
  return found.flat();
}
