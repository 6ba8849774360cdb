import type { Redis } from "ioredis";
import { eventKeys } from "../src/queue/keys.js";

/** An event's users in Redis (seated and waiting), and how many are both, which would be a double entry. */
export async function recordedUsers(redis: Redis, prefix: string, eventId: string): Promise<{ total: number; seats: number; duplicates: number }> {
  const [, seatsKey = "", waitingKey = ""] = eventKeys(prefix, eventId);
  const seats = await redis.hlen(seatsKey);
  const waiting = await redis.zcard(waitingKey);
  const seated = await redis.hkeys(seatsKey);
  const both = seated.length > 0 ? (await redis.zmscore(waitingKey, ...seated)).filter((s) => s !== null).length : 0;
  return { total: seats + waiting, seats, duplicates: both };
}
