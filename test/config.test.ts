import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../src/config.js";

describe("configuration from the environment", () => {
  it("turns ioredis auto-pipelining on only when asked", () => {
    expect(loadConfig({}).redisAutoPipelining).toBe(false);
    expect(loadConfig({ REDIS_AUTO_PIPELINING: "true" }).redisAutoPipelining).toBe(true);
    expect(loadConfig({ REDIS_AUTO_PIPELINING: " FALSE " }).redisAutoPipelining).toBe(false);
  });

  it("refuses a value it cannot read instead of guessing", () => {
    expect(() => loadConfig({ REDIS_AUTO_PIPELINING: "yes" })).toThrow(new ConfigError('REDIS_AUTO_PIPELINING must be true or false, got "yes"'));
    expect(() => loadConfig({ WORKERS: "0" })).toThrow(ConfigError);
    expect(() => loadConfig({ DURABILITY: "sometimes" })).toThrow(ConfigError);
  });
});
