import { randomBytes, randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ReservationStatus } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { eventKeys } from "../src/queue/keys.js";
import { QueueStore } from "../src/queue/queue-store.js";
import { createRedisClient } from "../src/redis/redis-client.js";
import { startTestRedis, type TestRedis } from "./helpers/redis-server.js";

// One event with 1,000,000 waiting users: no command may scan the queue, and a
// waiting user must fit the memory budget. Latencies are printed, not asserted.

const BIG = 1_000_000;
const SMALL = 1_000;
const BYTES_PER_WAITING_USER_BUDGET = 150;
const BYTES_PER_KEY_BUDGET = 80;

let server: TestRedis;
let redis: Redis;
beforeAll(async () => {
  server = await startTestRedis();
  redis = createRedisClient({ url: server.url, commandTimeoutMs: 30_000 });
  await redis.connect();
});
afterAll(async () => {
  redis.disconnect();
  await server.dispose();
});

/** Fills the event's queue as Reserve would (ZADD waiting seq user), pipelined. */
async function fill(waitingKey: string, metaKey: string, count: number): Promise<string[]> {
  const ids = Array.from({ length: count }, () => randomUUID());
  const batch = 10_000;
  const pipeline = redis.pipeline();
  for (let i = 0; i < count; i += batch) {
    const args: (string | number)[] = [];
    for (let j = i; j < Math.min(i + batch, count); j++) args.push(j + 1, ids[j] ?? "");
    pipeline.zadd(waitingKey, ...args);
  }
  pipeline.hset(metaKey, "next_seq", count);
  await pipeline.exec();
  return ids;
}

async function statusLatencyUs(store: QueueStore, eventId: string, ids: string[]): Promise<number> {
  const sample = Array.from({ length: 2000 }, (_, i) => ids[(i * 7919) % ids.length] ?? "");
  for (const id of sample.slice(0, 200)) await store.status(eventId, id); // warm up
  const started = performance.now();
  for (const id of sample) await store.status(eventId, id);
  return ((performance.now() - started) * 1000) / sample.length;
}

describe(`an event with ${BIG.toLocaleString("en")} waiting users`, () => {
  it("costs at most 150 bytes per waiting user, and GetStatus, Reserve and Cancel never scan the queue", async () => {
    const store = new QueueStore(redis, { prefix: `big-${randomUUID()}`, defaultCapacity: 1 });
    for (const eventId of ["small", "big"]) {
      await store.createEvent(eventId, { name: eventId, capacity: 1, holdSeconds: 0, opensAt: 0, closesAt: 0 });
      await store.reserve(eventId, "seated"); // the one seat is taken
    }
    const [smallMeta = "", , smallWaiting = ""] = eventKeys(store.options.prefix, "small");
    const [bigMeta = "", , bigWaiting = ""] = eventKeys(store.options.prefix, "big");
    const smallIds = await fill(smallWaiting, smallMeta, SMALL);

    const before = Number(/used_memory:(\d+)/.exec(await redis.info("memory"))?.[1]);
    const filledAt = performance.now();
    const bigIds = await fill(bigWaiting, bigMeta, BIG);
    const fillSeconds = (performance.now() - filledAt) / 1000;
    const after = Number(/used_memory:(\d+)/.exec(await redis.info("memory"))?.[1]);
    const perUser = (after - before) / BIG;
    const keyBytes = Number(await redis.call("MEMORY", "USAGE", bigWaiting, "SAMPLES", "0"));

    await redis.config("RESETSTAT");
    const smallUs = await statusLatencyUs(store, "small", smallIds);
    const bigUs = await statusLatencyUs(store, "big", bigIds);
    const last = bigIds[BIG - 1] ?? "";
    expect(await store.status("big", last)).toMatchObject({ status: ReservationStatus.QUEUED, position: BIG });
    expect(await store.reserve("big", "newcomer")).toMatchObject({ status: ReservationStatus.QUEUED, position: BIG + 1 });
    const middle = bigIds[BIG / 2] ?? "";
    const behind = bigIds[BIG / 2 + 1] ?? "";
    expect(await store.status("big", behind)).toMatchObject({ position: BIG / 2 + 2 });
    await store.cancel("big", middle, undefined);
    expect(await store.status("big", behind)).toMatchObject({ position: BIG / 2 + 1 });

    const stats = await redis.info("commandstats");
    const called = [...stats.matchAll(/^cmdstat_(\w+):calls=(\d+)/gm)].map((m) => m[1]);
    for (const scan of ["lpos", "lrange", "zrange", "zrangebyscore", "zrevrange", "zscan", "hgetall", "hkeys", "hvals", "smembers", "sscan", "keys", "scan"]) {
      expect(called, `${scan} scans the queue`).not.toContain(scan);
    }

    console.log(
      [
        `filled ${BIG.toLocaleString("en")} waiting users in ${fillSeconds.toFixed(1)} s (pipelined ZADD)`,
        `memory per waiting user (36-char id): ${perUser.toFixed(1)} bytes by used_memory, ${(keyBytes / BIG).toFixed(1)} by MEMORY USAGE; budget ${BYTES_PER_WAITING_USER_BUDGET}`,
        `GetStatus (status-14.lua, one round trip): ${smallUs.toFixed(0)} µs at ${SMALL.toLocaleString("en")} waiting, ${bigUs.toFixed(0)} µs at ${BIG.toLocaleString("en")}: ratio ${(bigUs / smallUs).toFixed(2)} (goal ≤ 1.5, not asserted)`,
        `commands called: ${called.join(", ")}`,
      ].join("\n"),
    );
    expect(perUser).toBeLessThanOrEqual(BYTES_PER_WAITING_USER_BUDGET);
  });

  it("an idempotency key adds at most 80 bytes per waiting user (an 8-byte digest under an 8-byte field)", async () => {
    const store = new QueueStore(redis, { prefix: `keys-${randomUUID()}`, defaultCapacity: 1 });
    await store.createEvent("keyed", { name: "keyed", capacity: 1, holdSeconds: 0, opensAt: 0, closesAt: 0 });
    await store.reserve("keyed", "seated", "k".repeat(32));
    const retries = eventKeys(store.options.prefix, "keyed")[7] ?? "";
    // What a keyed Reserve stores: one field of 8 bytes holding 8 bytes.
    const [field = ""] = await redis.hkeysBuffer(retries);
    expect([field.length, await redis.hstrlen(retries, field)]).toEqual([8, 8]);
    // The same for N users, written as the script writes them.
    const N = 200_000;
    const before = Number(/used_memory:(\d+)/.exec(await redis.info("memory"))?.[1]);
    const pipeline = redis.pipeline();
    for (let i = 0; i < N; i += 10_000) {
      const args: Buffer[] = [];
      for (let j = i; j < i + 10_000; j++) args.push(randomBytes(8), randomBytes(8));
      pipeline.hset(retries, ...args);
    }
    await pipeline.exec();
    const after = Number(/used_memory:(\d+)/.exec(await redis.info("memory"))?.[1]);
    const perKey = (after - before) / N;
    console.log(`an idempotency key per waiting user: ${perKey.toFixed(1)} bytes by used_memory (${N.toLocaleString("en")} keys); budget ${BYTES_PER_KEY_BUDGET}`);
    expect(perKey).toBeLessThanOrEqual(BYTES_PER_KEY_BUDGET);
  });
});
