import type { Redis } from "ioredis";
import { stdSerializers } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRedisClient } from "../src/redis/redis-client.js";
import { loggable } from "../src/rpc/errors.js";
import { startTestRedis, type TestRedis } from "./helpers/redis-server.js";

// ioredis attaches a failed command, arguments and all, to its ReplyError: a
// script's arguments can be a fresh draw seed or an entrant's secret, which
// must never reach the log.
let server: TestRedis;
let redis: Redis;
beforeAll(async () => {
  server = await startTestRedis();
  redis = createRedisClient({ url: server.url, commandTimeoutMs: 5000 });
  await redis.connect();
});
afterAll(async () => {
  redis.disconnect();
  await server.dispose();
});

describe("errors as logged", () => {
  it("carry the message but not the command's arguments", async () => {
    await redis.set("a-string", "x");
    const err = await redis.hset("a-string", "field", "s3cret-seed").then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(JSON.stringify(stdSerializers.err(err as Error))).toContain("s3cret-seed"); // what pino would have logged
    const logged = JSON.stringify(stdSerializers.err(loggable(err) as Error));
    expect(logged).not.toContain("s3cret-seed");
    expect(logged).toContain("WRONGTYPE");
  });
});
