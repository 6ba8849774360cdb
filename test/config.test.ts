import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ConfigError, defaultMaxStreams, loadConfig } from "../src/config.js";
import { cgroupCpuLimit, usableCpus } from "../src/process/cpu-limit.js";

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

describe("limits for a hostile crowd", () => {
  it("have the documented defaults, and refuse values out of range with a message naming the variable", () => {
    const c = loadConfig({});
    expect(c.maxConnectionsPerIp).toBe(0);
    expect(c.idleTimeoutMs).toBe(120_000);
    expect(c.requestTimeoutMs).toBe(30_000);
    expect(c.maxStreams).toBe(defaultMaxStreams());
    expect(defaultMaxStreams(452_984_832)).toBe(2304);
    expect(c.maxStreamsPerConnection).toBe(2048);
    expect(c.maxWatchesPerUser).toBe(4);
    expect(c.adminFailuresPerMinute).toBe(30);
    expect(c.metricsToken).toBeUndefined();
    expect(loadConfig({ IDLE_TIMEOUT_SECONDS: "5", MAX_STREAMS: "100", METRICS_TOKEN: "m" })).toMatchObject({ idleTimeoutMs: 5000, maxStreams: 100, metricsToken: "m" });
    for (const [name, value] of [["ADMIN_AUTH_FAILURES_PER_MINUTE", "0"], ["MAX_WATCHES_PER_USER", "0"], ["REQUEST_TIMEOUT_SECONDS", "-1"], ["MAX_STREAMS", "lots"]] as const) {
      expect(() => loadConfig({ [name]: value })).toThrow(new RegExp(name));
    }
  });
});

describe("CPUs a container may use (cgroup CPU limits)", () => {
  const dirs: string[] = [];
  afterAll(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })));
  /** A directory laid out like / with the given files. */
  function root(files: Record<string, string>): string {
    const dir = mkdtempSync(join(tmpdir(), "tq-cgroup-"));
    dirs.push(dir);
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(join(dir, path, ".."), { recursive: true });
      writeFileSync(join(dir, path), text);
    }
    return dir;
  }

  it("reads cgroup v2 cpu.max of the process's cgroup and its parents, the tightest winning", () => {
    expect(cgroupCpuLimit(root({ "/proc/self/cgroup": "0::/\n", "/sys/fs/cgroup/cpu.max": "max 100000\n" }))).toBeUndefined();
    expect(cgroupCpuLimit(root({ "/proc/self/cgroup": "0::/\n", "/sys/fs/cgroup/cpu.max": "150000 100000\n" }))).toBe(1.5);
    const nested = root({ "/proc/self/cgroup": "0::/kubepods/pod1/c1\n", "/sys/fs/cgroup/cpu.max": "max 100000", "/sys/fs/cgroup/kubepods/pod1/cpu.max": "100000 100000", "/sys/fs/cgroup/kubepods/pod1/c1/cpu.max": "400000 100000" });
    expect(cgroupCpuLimit(nested)).toBe(1);
    expect(usableCpus(nested)).toBe(1);
    expect(usableCpus(root({ "/proc/self/cgroup": "0::/\n", "/sys/fs/cgroup/cpu.max": "50000 100000" }))).toBe(1);
  });

  it("reads cgroup v1 cpu.cfs_quota_us / cpu.cfs_period_us (-1: no limit)", () => {
    const v1 = (quota: string) => root({ "/proc/self/cgroup": "2:cpuacct:/\n1:cpu:/\n", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us": quota, "/sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000" });
    expect(cgroupCpuLimit(v1("-1"))).toBeUndefined();
    expect(cgroupCpuLimit(v1("200000"))).toBe(2);
    expect(usableCpus(v1("-1"))).toBe(availableParallelism());
  });

  it("no cgroup files (another OS, no /proc): the cores Node sees", () => {
    expect(usableCpus(root({}))).toBe(availableParallelism());
  });
});
