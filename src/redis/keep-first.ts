import type { Cluster, Redis } from "ioredis";
import { callRedis } from "./redis-errors.js";

/**
 * Stores `candidate` under `key` unless a value is there already, and answers
 * the value Redis holds: the first writer's wins, every other caller gets it.
 * One command (SET NX GET, Redis 7.0+), so there is no window between the two.
 */
export async function keepFirst(redis: Redis | Cluster, key: string, candidate: string): Promise<string> {
  const earlier = await callRedis(() => redis.set(key, candidate, "NX", "GET"));
  return earlier ?? candidate;
}
