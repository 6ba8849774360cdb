import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ReservationStatus } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { queueKeys } from "../src/queue/keys.js";
import { QueueStore } from "../src/queue/queue-store.js";
import { createRedisClient } from "../src/redis/redis-client.js";
import { startTestRedis, type TestRedis } from "./helpers/redis-server.js";

const { RESERVED, QUEUED, NOT_FOUND } = ReservationStatus;

let server: TestRedis;
let redis: Redis;
let store: QueueStore;
let prefix: string;

beforeAll(async () => {
  server = await startTestRedis();
  redis = createRedisClient({ url: server.url, commandTimeoutMs: 5000 });
  await redis.connect();
});
afterAll(async () => {
  redis.disconnect();
  await server.dispose();
});
beforeEach(() => {
  prefix = `test-${randomUUID()}`;
  store = new QueueStore(redis, { prefix, defaultCapacity: 2 });
});

describe("keys", () => {
  it("share one hash tag per queue so a queue lives in one cluster slot", () => {
    const keys = queueKeys("tq", "default");
    expect(Object.values(keys)).toEqual(["tq:{default}:meta", "tq:{default}:reserved", "tq:{default}:waiting"]);
  });
});

describe("reserve-3.lua", () => {
  it("reserves the first `capacity` users and queues the rest in FIFO order", async () => {
    expect(await store.reserve("a")).toEqual({ status: RESERVED, position: 0, alreadyKnown: false });
    expect(await store.reserve("b")).toEqual({ status: RESERVED, position: 0, alreadyKnown: false });
    expect(await store.reserve("c")).toEqual({ status: QUEUED, position: 1, alreadyKnown: false });
    expect(await store.reserve("d")).toEqual({ status: QUEUED, position: 2, alreadyKnown: false });
    const keys = queueKeys(prefix, "default");
    expect((await redis.smembers(keys.reserved)).sort()).toEqual(["a", "b"]);
    expect(await redis.zrange(keys.waiting, 0, -1)).toEqual(["c", "d"]);
  });

  it("answers a known user with the same state and changes nothing", async () => {
    for (const u of ["a", "b", "c", "d"]) await store.reserve(u);
    expect(await store.reserve("a")).toEqual({ status: RESERVED, position: 0, alreadyKnown: true });
    expect(await store.reserve("d")).toEqual({ status: QUEUED, position: 2, alreadyKnown: true });
    const keys = queueKeys(prefix, "default");
    expect(await redis.scard(keys.reserved)).toBe(2);
    expect(await redis.zcard(keys.waiting)).toBe(2);
  });

  it("stores the capacity when the queue is created; afterwards the stored value wins", async () => {
    await store.reserve("a");
    const keys = queueKeys(prefix, "default");
    expect(await redis.hget(keys.meta, "capacity")).toBe("2");
    const bigger = new QueueStore(redis, { prefix, defaultCapacity: 100 });
    await bigger.reserve("b");
    expect(await bigger.reserve("c")).toMatchObject({ status: QUEUED, position: 1 });
    expect(await redis.hget(keys.meta, "capacity")).toBe("2");
  });

  it("never lets a newcomer take a free seat while others wait", async () => {
    for (const u of ["a", "b", "c"]) await store.reserve(u);
    await redis.srem(queueKeys(prefix, "default").reserved, "a"); // a seat frees up
    expect(await store.reserve("late")).toEqual({ status: QUEUED, position: 2, alreadyKnown: false });
  });
});

describe("status-3.lua", () => {
  it("reports reserved, queued with position, and not found", async () => {
    for (const u of ["a", "b", "c", "d"]) await store.reserve(u);
    expect(await store.status("a")).toEqual({ status: RESERVED, position: 0 });
    expect(await store.status("d")).toEqual({ status: QUEUED, position: 2 });
    expect(await store.status("zzz")).toEqual({ status: NOT_FOUND, position: 0 });
  });

  it("finds a position without scanning the queue (ZRANK, no LPOS/ZRANGE)", async () => {
    const keys = queueKeys(prefix, "default");
    await store.reserve("a");
    await store.reserve("b");
    const pipeline = redis.pipeline();
    for (let i = 0; i < 50_000; i++) pipeline.zadd(keys.waiting, i + 1, `user-${i}`);
    await pipeline.exec();
    await redis.config("RESETSTAT");
    expect(await store.status("user-49999")).toEqual({ status: QUEUED, position: 50_000 });
    expect(await store.status("user-0")).toEqual({ status: QUEUED, position: 1 });
    const stats = await redis.info("commandstats");
    const called = [...stats.matchAll(/^cmdstat_(\w+):calls=(\d+)/gm)].map((m) => m[1]);
    expect(called).toContain("zrank");
    for (const scan of ["lpos", "zrange", "zscan", "lrange", "zrangebyscore", "keys", "scan"]) expect(called).not.toContain(scan);
  });
});

describe("process-queue-3.lua", () => {
  it("promotes exactly min(free seats, waiting) in FIFO order when seats free up", async () => {
    for (const u of ["a", "b", "c", "d", "e"]) await store.reserve(u);
    expect(await store.processQueue()).toEqual([]);
    await redis.srem(queueKeys(prefix, "default").reserved, "a");
    expect(await store.processQueue()).toEqual(["c"]);
    expect(await store.status("c")).toEqual({ status: RESERVED, position: 0 });
    expect(await store.status("d")).toEqual({ status: QUEUED, position: 1 });
    expect(await store.status("e")).toEqual({ status: QUEUED, position: 2 });
  });

  it("promotes into raised capacity, no more than are waiting", async () => {
    for (const u of ["a", "b", "c", "d", "e"]) await store.reserve(u);
    await redis.hset(queueKeys(prefix, "default").meta, "capacity", 10);
    expect(await store.processQueue()).toEqual(["c", "d", "e"]);
    expect(await store.processQueue()).toEqual([]);
    expect(await redis.scard(queueKeys(prefix, "default").reserved)).toBe(5);
    // With seats left and nobody waiting, a newcomer is reserved at once.
    expect(await store.reserve("f")).toMatchObject({ status: RESERVED });
  });

  it("promotes nobody when capacity was lowered below the seats taken", async () => {
    for (const u of ["a", "b", "c"]) await store.reserve(u);
    await redis.hset(queueKeys(prefix, "default").meta, "capacity", 1);
    expect(await store.processQueue()).toEqual([]);
    expect(await store.status("a")).toMatchObject({ status: RESERVED });
  });
});

describe("reset-3.lua", () => {
  it("clears users, keeps the capacity, and counts what it removed", async () => {
    for (const u of ["a", "b", "c"]) await store.reserve(u);
    await redis.hset(queueKeys(prefix, "default").meta, "capacity", 3);
    expect(await store.reset()).toEqual({ clearedReserved: 2, clearedWaiting: 1 });
    expect(await store.status("a")).toEqual({ status: NOT_FOUND, position: 0 });
    expect(await redis.hget(queueKeys(prefix, "default").meta, "capacity")).toBe("3");
    for (const u of ["x", "y", "z"]) expect(await store.reserve(u)).toMatchObject({ status: RESERVED });
    expect(await store.reset()).toEqual({ clearedReserved: 3, clearedWaiting: 0 });
  });
});
