import { availableParallelism } from "node:os";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../src/config.js";

describe("configuration from the environment", () => {
  it("turns ioredis auto-pipelining on only when asked", () => {
    expect(loadConfig({}).redisAutoPipelining).toBe(false);
    expect(loadConfig({ REDIS_AUTO_PIPELINING: "true" }).redisAutoPipelining).toBe(true);
    expect(loadConfig({ REDIS_AUTO_PIPELINING: " FALSE " }).redisAutoPipelining).toBe(false);
  });

  it("has workers that fill the cores pause for garbage on their own thread, unless told otherwise", () => {
    const cores = availableParallelism();
    expect(loadConfig({ WORKERS: String(cores) }).workerGc).toBe("serial");
    expect(loadConfig({ WORKERS: String(cores), WORKER_GC: "parallel" }).workerGc).toBe("parallel");
    expect(loadConfig({ WORKERS: "1", WORKER_GC: "single-threaded" }).workerGc).toBe("single-threaded");
    expect(loadConfig({ WORKERS: "1", WORKER_GC: "serial" }).workerGc).toBe("serial");
    if (cores > 1) expect(loadConfig({ WORKERS: "1" }).workerGc).toBe("parallel");
  });

  it("refuses a value it cannot read instead of guessing", () => {
    expect(() => loadConfig({ WORKER_GC: "none" })).toThrow(ConfigError);
    expect(() => loadConfig({ REDIS_AUTO_PIPELINING: "yes" })).toThrow(new ConfigError('REDIS_AUTO_PIPELINING must be true or false, got "yes"'));
    expect(() => loadConfig({ WORKERS: "0" })).toThrow(ConfigError);
    expect(() => loadConfig({ DURABILITY: "sometimes" })).toThrow(ConfigError);
  });
});
