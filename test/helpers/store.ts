import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, beforeEach } from "vitest";
import { QueueStore } from "../../src/queue/queue-store.js";
import { createRedisClient } from "../../src/redis/redis-client.js";
import { startTestRedis, type TestRedis } from "./redis-server.js";

export interface TestStore {
  readonly server: TestRedis;
  readonly redis: Redis;
  /** A QueueStore under a prefix of its own, new for every test. */
  readonly store: QueueStore;
}

/**
 * The file's own redis-server and a client to it (started before its tests,
 * stopped after), and a fresh QueueStore for each test: the scripts called
 * directly, with no service around them. Read the fields inside tests and hooks.
 */
export function useTestStore(defaultCapacity = 2): TestStore {
  let server: TestRedis | undefined;
  let redis: Redis | undefined;
  let store: QueueStore | undefined;
  beforeAll(async () => {
    server = await startTestRedis();
    redis = createRedisClient({ url: server.url, commandTimeoutMs: 5000 });
    await redis.connect();
  });
  afterAll(async () => {
    redis?.disconnect();
    await server?.dispose();
  });
  beforeEach(() => {
    if (redis) store = new QueueStore(redis, { prefix: `test-${randomUUID()}`, defaultCapacity });
  });
  const ready = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error("useTestStore: read inside a test or hook, after beforeAll");
    return value;
  };
  return {
    get server() {
      return ready(server);
    },
    get redis() {
      return ready(redis);
    },
    get store() {
      return ready(store);
    },
  };
}
