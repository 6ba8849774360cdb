import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import * as http2 from "node:http2";
import { Agent, request } from "node:http";
import { connect, createServer, type AddressInfo } from "node:net";
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { isListening } from "../src/redis/local-redis.js";
import { sample, scrape } from "./helpers/metrics.js";
import { freePort, startTestRedis, type TestRedis } from "./helpers/redis-server.js";
import { isAlive, until } from "./helpers/wait.js";

// `npm test` builds first (pretest); these tests run the real entry point, as `npm start` does.
const MAIN = resolve("dist/src/main.js");

interface Proc {
  child: ChildProcessWithoutNullStreams;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

// Every service a test started; one that a failed assertion left running is killed
// after the test (its workers exit when they lose their primary).
const started: Proc[] = [];

function run(env: Record<string, string>, cwd = process.cwd()): Proc {
  const child = spawn(process.execPath, [MAIN], { cwd, env: { PATH: process.env["PATH"] ?? "", HOST: "127.0.0.1", ...env } });
  let out = "";
  let err = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)));
  const proc = { child, stdout: () => out, stderr: () => err, exited };
  started.push(proc);
  return proc;
}

/** The pids of the processes that logged "listening", in order. */
function listeningPidsOf(proc: Proc): number[] {
  return proc
    .stdout()
    .trim()
    .split("\n")
    .filter((l) => l.includes("ticket-queue listening"))
    .map((l) => (JSON.parse(l) as { pid: number }).pid);
}

async function waitForHealth(port: number): Promise<void> {
  const healthy = (): Promise<boolean> => fetch(`http://127.0.0.1:${port}/health`).then((r) => r.ok, () => false);
  if (!(await until(healthy, 10_000))) throw new Error("service did not become healthy");
}

let redis: TestRedis;
beforeAll(async () => {
  expect(existsSync(MAIN), "run npm run build first").toBe(true);
  redis = await startTestRedis(["--enable-debug-command", "local"]);
});
afterEach(async () => {
  for (const proc of started.splice(0)) {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) continue;
    proc.child.kill("SIGKILL");
    await proc.exited;
  }
});
afterAll(async () => {
  await redis.dispose();
});

describe("npm start (dist/src/main.js)", () => {
  it("refuses to start in production without ADMIN_TOKEN", async () => {
    const proc = run({ NODE_ENV: "production", REDIS_URL: redis.url, PORT: "0" });
    expect(await proc.exited).toBe(1);
    expect(proc.stderr()).toContain("ADMIN_TOKEN must be set");
  });

  it("refuses to start in production without TICKET_KEY, and uses the one given", async () => {
    const refused = run({ NODE_ENV: "production", ADMIN_TOKEN: "t", REDIS_URL: redis.url, PORT: "0" });
    expect(await refused.exited).toBe(1);
    expect(refused.stderr()).toContain("TICKET_KEY must be set");

    const { exportJWK, generateKeyPair } = await import("jose");
    const { privateKey } = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
    const jwk = await exportJWK(privateKey);
    const port = await freePort();
    const proc = run({ NODE_ENV: "production", ADMIN_TOKEN: "t", TICKET_KEY: JSON.stringify(jwk), REDIS_URL: redis.url, PORT: String(port), KEY_PREFIX: `prod-${port}` });
    await waitForHealth(port);
    const jwks = (await (await fetch(`http://127.0.0.1:${port}/.well-known/jwks.json`)).json()) as { keys: { x: string }[] };
    expect(jwks.keys[0]?.x).toBe(jwk.x);
    proc.child.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
    expect(proc.stdout()).not.toContain(String(jwk.d));
  });

  it("refuses DURABILITY=strict on a server that does not fsync every write, with or without WORKERS", async () => {
    for (const workers of ["1", "2"]) {
      const proc = run({ REDIS_URL: redis.url, PORT: "0", ADMIN_TOKEN: "t", DURABILITY: "strict", WORKERS: workers });
      expect(await proc.exited).toBe(1);
      expect(proc.stderr()).toContain("appendfsync always");
    }
  });

  it("refuses a bad setting with a clear message", async () => {
    const proc = run({ REDIS_URL: redis.url, CAPACITY: "lots" });
    expect(await proc.exited).toBe(1);
    expect(proc.stderr()).toMatch(/CAPACITY must be an integer/);
  });

  it("makes a random admin token in development, prints it once to stderr and never logs it", async () => {
    const port = await freePort();
    const proc = run({ REDIS_URL: redis.url, PORT: String(port), KEY_PREFIX: `main-${port}` });
    await waitForHealth(port);
    const token = /admin token is: (\S+)/.exec(proc.stderr())?.[1];
    expect(token).toBeTruthy();
    const ok = await fetch(`http://127.0.0.1:${port}/process_queue`, { method: "POST", headers: { "x-token": token ?? "" } });
    expect(ok.status).toBe(200);
    const refused = await fetch(`http://127.0.0.1:${port}/process_queue`, { method: "POST", headers: { "x-token": "my-secret-token" } });
    expect(refused.status).toBe(401);
    proc.child.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
    expect(proc.stdout()).not.toContain(token);
    // stdout is the JSON log: every line parses.
    for (const line of proc.stdout().trim().split("\n")) expect(() => JSON.parse(line) as unknown).not.toThrow();
    expect(proc.stderr().split(token ?? "").length - 1).toBe(1);
  });

  it("warns at start when Redis may evict keys (maxmemory-policy), and not when it may not", async () => {
    const evicting = await startTestRedis(["--maxmemory-policy", "allkeys-lru"]);
    try {
      for (const [url, warned] of [[evicting.url, true], [redis.url, false]] as const) {
        const port = await freePort();
        const proc = run({ REDIS_URL: url, PORT: String(port), ADMIN_TOKEN: "t", KEY_PREFIX: `evict-${port}` });
        await waitForHealth(port);
        await new Promise((r) => setTimeout(r, 300));
        proc.child.kill("SIGTERM");
        expect(await proc.exited).toBe(0);
        const warning = proc.stdout().split("\n").find((line) => line.includes("maxmemory-policy"));
        if (warned) expect(JSON.parse(warning ?? "{}")).toMatchObject({ level: 40, servers: [expect.stringContaining("allkeys-lru")] });
        else expect(warning).toBeUndefined();
      }
    } finally {
      await evicting.dispose();
    }
  });

  it("drains an in-flight call on SIGTERM, then exits 0", async () => {
    const port = await freePort();
    const proc = run({ REDIS_URL: redis.url, PORT: String(port), ADMIN_TOKEN: "t", KEY_PREFIX: `drain-${port}`, REDIS_COMMAND_TIMEOUT_MS: "3000" });
    await waitForHealth(port);
    const admin = new Redis(redis.url);
    // One kept-alive connection, open before anything else: the call below cannot race the listener's close.
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const post = (path: string, body: string): Promise<{ status: number; json: Record<string, unknown> }> =>
      new Promise((resolve, reject) => {
        const req = request({ host: "127.0.0.1", port, path, method: "POST", agent }, (res) => {
          let text = "";
          res.on("data", (d: Buffer) => (text += d.toString()));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) as Record<string, unknown> }));
        });
        req.on("error", reject);
        req.end(body);
      });
    try {
      expect((await post("/reserve", "{}")).status).toBe(200);
      // Redis is busy for 800 ms: the reserve below is in flight when SIGTERM lands.
      const sleeping = admin.call("DEBUG", "SLEEP", "0.8");
      await new Promise((r) => setTimeout(r, 50));
      const inFlight = post("/reserve", JSON.stringify({ user_id: "in-flight" }));
      await new Promise((r) => setTimeout(r, 200));
      proc.child.kill("SIGTERM");
      const res = await inFlight;
      expect(res.status).toBe(200);
      expect(res.json).toMatchObject({ user_id: "in-flight", status: "RESERVATION_STATUS_RESERVED" });
      await sleeping;
      expect(await proc.exited).toBe(0);
      expect(await isListening("127.0.0.1", port)).toBe(false);
    } finally {
      agent.destroy();
      admin.disconnect();
    }
  });

  it("WORKERS=2 runs two processes on one port, replaces one that dies, and stops both on SIGTERM", async () => {
    const port = await freePort();
    const proc = run({ REDIS_URL: redis.url, PORT: String(port), ADMIN_TOKEN: "t", WORKERS: "2", KEY_PREFIX: `workers-${port}` });
    const listeningPids = (): number[] => listeningPidsOf(proc);
    await until(() => listeningPids().length === 2, 10_000);
    const [first, second] = listeningPids();
    expect(first).not.toBe(second);
    expect(first).not.toBe(proc.child.pid);
    // Workers that fill the cores pause for garbage on their own thread (WORKER_GC's default).
    const serialGc = availableParallelism() <= 2;
    for (const pid of [first, second]) {
      const args = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      expect(args.includes("--no-parallel-scavenge") && args.includes("--no-concurrent-marking")).toBe(serialGc);
    }
    await waitForHealth(port);
    process.kill(first ?? 0, "SIGKILL");
    await until(() => listeningPids().length === 3, 10_000);
    expect(listeningPids()).toHaveLength(3);
    expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200);
    // Every scrape answers for all workers combined.
    for (let i = 0; i < 20; i++) await fetch(`http://127.0.0.1:${port}/reserve`, { method: "POST", body: "{}" });
    for (let i = 0; i < 3; i++) {
      expect(sample(await scrape(`http://127.0.0.1:${port}`), "ticketqueue_rpc_requests_total", { rpc: "Reserve", code: "OK" })).toBe(20);
    }
    // Scrapes at once share one listener for the primary's answers (one each warned of a leak past ten).
    const texts = await Promise.all(Array.from({ length: 30 }, () => fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text())));
    expect(texts.every((t) => t.includes("ticketqueue_rpc_requests_total"))).toBe(true);
    expect(proc.stderr()).not.toContain("MaxListenersExceededWarning");
    proc.child.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
    for (const pid of listeningPids().slice(1)) expect(() => process.kill(pid, 0)).toThrow();
  });

  it("WORKERS=2: a worker whose event loop stops (SIGSTOP) is killed and replaced within WORKER_WATCHDOG_SECONDS, and /metrics still answers meanwhile", async () => {
    const port = await freePort();
    const proc = run({ REDIS_URL: redis.url, PORT: String(port), ADMIN_TOKEN: "t", WORKERS: "2", KEY_PREFIX: `stuck-${port}`, WORKER_WATCHDOG_SECONDS: "3" });
    await until(() => listeningPidsOf(proc).length >= 2, 10_000);
    await waitForHealth(port);
    const [stuck] = listeningPidsOf(proc);
    process.kill(stuck ?? 0, "SIGSTOP");
    const stoppedAt = Date.now();
    // Silent for half the limit (1.5 s) it gets no new connection, found within a sixth more
    // (or it is killed by then); a scrape then answers within seconds.
    await new Promise((r) => setTimeout(r, 2_300));
    // (each on a new connection: one kept alive from before may be the stuck worker's, which hangs until it is killed)
    const statusOf = (path: string): Promise<number> =>
      new Promise((done, fail) => request({ host: "127.0.0.1", port, path, agent: false }, (res) => done(res.resume().statusCode ?? 0)).on("error", fail).end());
    for (let i = 0; i < 10; i++) expect(await statusOf("/health")).toBe(200);
    expect(await statusOf("/metrics")).toBe(200);
    expect(Date.now() - stoppedAt).toBeLessThan(5_500);
    await until(() => listeningPidsOf(proc).length >= 3, 10_000);
    expect(listeningPidsOf(proc)).toHaveLength(3);
    expect(Date.now() - stoppedAt).toBeLessThan(9_000);
    expect(isAlive(stuck ?? 0)).toBe(false);
    expect(proc.stdout()).toContain("worker stopped answering: killing it");
    await waitForHealth(port);
    proc.child.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
  }, 30_000);

  it("WORKERS=2: a worker killed -9 leaves no connection hanging (each is answered or closed) and no socket held in the primary", async () => {
    const port = await freePort();
    const proc = run({ REDIS_URL: redis.url, PORT: String(port), ADMIN_TOKEN: "t", WORKERS: "2", KEY_PREFIX: `kill-${port}` });
    await until(() => listeningPidsOf(proc).length >= 2, 10_000);
    await waitForHealth(port);
    const primaryFds = (): number => readdirSync(`/proc/${proc.child.pid}/fd`).length;
    const fdsBefore = primaryFds();
    const [victim] = listeningPidsOf(proc);
    // 64 clients each opening a new connection per request, around the kill.
    const startedAt = Date.now();
    let hung = 0;
    const one = (): Promise<void> =>
      new Promise((done) => {
        const req = request({ host: "127.0.0.1", port, path: "/health", agent: false, timeout: 5_000 }, (res) => {
          res.resume();
          res.on("end", done);
          res.on("error", () => done());
        });
        req.on("timeout", () => {
          hung++;
          req.destroy();
        });
        req.on("error", () => done());
        req.end();
      });
    const clients = Array.from({ length: 64 }, async () => {
      while (Date.now() - startedAt < 2_500) await one();
    });
    setTimeout(() => process.kill(victim ?? 0, "SIGKILL"), 1_000);
    await Promise.all(clients);
    expect(hung).toBe(0);
    await waitForHealth(port);
    // (the replacement worker's channel adds a few)
    expect(primaryFds()).toBeLessThan(fdsBefore + 8);
    proc.child.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
  }, 30_000);

  it("WORKERS=2: a client that never finishes its headers, or its body, is answered 408 and cut at the request timeout, as with one process", async () => {
    const port = await freePort();
    const proc = run({ REDIS_URL: redis.url, PORT: String(port), ADMIN_TOKEN: "t", WORKERS: "2", KEY_PREFIX: `slow-${port}`, REQUEST_TIMEOUT_SECONDS: "2" });
    await until(() => listeningPidsOf(proc).length >= 2, 10_000);
    await waitForHealth(port);
    const unfinished = ["GET /health HTTP/1.1\r\nHost: x\r\nX-a: ", 'POST /reserve HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"user_id"'];
    // Eight of each: the primary hands connections to both workers.
    const cut = await Promise.all(
      Array.from({ length: 16 }, (_, i) =>
        new Promise<{ answer: string; ms: number }>((done) => {
          const started = Date.now();
          let answer = "";
          const socket = connect(port, "127.0.0.1", () => socket.write(unfinished[i % 2] ?? ""));
          socket.on("data", (d: Buffer) => (answer += d.toString("latin1")));
          socket.on("error", () => undefined);
          socket.on("close", () => done({ answer: answer.split("\r\n")[0] ?? "", ms: Date.now() - started }));
          setTimeout(() => socket.destroy(), 15_000);
        }),
      ),
    );
    for (const { answer, ms } of cut) {
      expect(answer).toBe("HTTP/1.1 408 Request Timeout");
      expect(ms).toBeLessThan(8_000);
    }
    proc.child.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
  }, 30_000);

  it.each([
    { workers: "1", signal: "SIGTERM" as const },
    { workers: "2", signal: "SIGTERM" as const },
    { workers: "1", signal: "SIGKILL" as const },
  ])("npm start with WORKERS=$workers: $signal to npm itself stops every process of the service within 10 s", async ({ workers, signal }) => {
    const port = await freePort();
    // --ignore-scripts: the test runs the built service (pretest built it); npm would otherwise rebuild dist/ under the other tests.
    const npm = spawn("npm", ["start", "--ignore-scripts"], {
      env: { PATH: process.env["PATH"] ?? "", HOME: process.env["HOME"] ?? "/root", HOST: "127.0.0.1", PORT: String(port), REDIS_URL: redis.url, ADMIN_TOKEN: "t", WORKERS: workers, KEY_PREFIX: `npm-${port}` },
    });
    let out = "";
    npm.stdout.on("data", (d: Buffer) => (out += d.toString()));
    const npmExited = new Promise<void>((done) => npm.once("exit", () => done()));
    try {
      await waitForHealth(port);
      const pids = (): number[] => [...new Set([...out.matchAll(/"pid":(\d+)/g)].map((m) => Number(m[1])))];
      await until(() => pids().length >= Number(workers) + (workers === "1" ? 0 : 1), 5_000);
      const service = pids();
      expect(service.length).toBe(Number(workers) + (workers === "1" ? 0 : 1));
      expect(service).not.toContain(npm.pid);
      npm.kill(signal);
      const deadline = Date.now() + 10_000;
      while (Date.now() < deadline && (service.some(isAlive) || (await isListening("127.0.0.1", port)))) await new Promise((r) => setTimeout(r, 100));
      expect(service.filter(isAlive)).toEqual([]);
      expect(await isListening("127.0.0.1", port)).toBe(false);
      await npmExited;
    } finally {
      npm.kill("SIGKILL");
    }
  }, 30_000);

  // A real cgroup with a CPU limit of one CPU (v1 here; this machine mounts the cpu
  // controller there), as a container runtime makes one for a 1-CPU pod.
  const cgroupDir = "/sys/fs/cgroup/cpu";
  const canMakeCgroups = availableParallelism() > 1 && (() => {
    try {
      accessSync(cgroupDir, constants.W_OK);
      return existsSync(`${cgroupDir}/cpu.cfs_quota_us`);
    } catch {
      return false;
    }
  })();
  it.skipIf(!canMakeCgroups)("in a cgroup limited to one CPU, the default WORKERS is 1 (not one per host core)", async () => {
    const group = `${cgroupDir}/tq-test-${process.pid}`;
    mkdirSync(group);
    let child: ReturnType<typeof spawn> | undefined;
    try {
      writeFileSync(`${group}/cpu.cfs_quota_us`, "100000");
      const port = await freePort();
      child = spawn("sh", ["-c", `echo $$ > ${group}/cgroup.procs && exec "${process.execPath}" "${MAIN}"`], {
        env: { PATH: process.env["PATH"] ?? "", HOST: "127.0.0.1", PORT: String(port), REDIS_URL: redis.url, ADMIN_TOKEN: "t", KEY_PREFIX: `cg-${port}` },
      });
      let out = "";
      child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
      await waitForHealth(port);
      // One process serves the port itself: no primary, no workers.
      expect(out).not.toContain("primary started its workers");
      expect(out.match(/ticket-queue listening/g)).toHaveLength(1);
      expect(out).toContain(`"pid":${child.pid}`);
    } finally {
      if (child && child.exitCode === null) {
        const exited = new Promise<void>((done) => child?.once("exit", () => done()));
        child.kill("SIGTERM");
        await exited;
      }
      rmdirSync(group);
    }
  });

  it("stops on SIGTERM within 10 s even when nobody reads its log any more (stdout full, then a broken pipe)", async () => {
    const port = await freePort();
    // Its stdout is a pipe nobody reads: log lines pile up in the process once the pipe is full.
    const child = spawn(process.execPath, [MAIN], {
      env: { PATH: process.env["PATH"] ?? "", HOST: "127.0.0.1", PORT: String(port), REDIS_URL: redis.url, ADMIN_TOKEN: "t", WORKERS: "1", KEY_PREFIX: `pipe-${port}` },
      stdio: ["ignore", "pipe", "ignore"],
    });
    const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)));
    try {
      await waitForHealth(port);
      // Each read of an event with a field out of range logs a warning: 2,000 of them fill the pipe.
      const admin = new Redis(redis.url);
      await fetch(`http://127.0.0.1:${port}/v1/events`, { method: "POST", headers: { "x-token": "t" }, body: JSON.stringify({ event_id: "noisy", capacity: 1 }) });
      await admin.hset(`pipe-${port}:{noisy}:meta`, "opens_at", "-5");
      admin.disconnect();
      for (let i = 0; i < 20; i++) await Promise.all(Array.from({ length: 100 }, () => fetch(`http://127.0.0.1:${port}/v1/events/noisy`).then((r) => r.text())));
      // Then the reader goes away for good, as when the supervisor that piped its log dies.
      child.stdout?.destroy();
      child.kill("SIGTERM");
      const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r("still running after 10 s"), 10_000))]);
      expect(code).toBe(0);
    } finally {
      child.kill("SIGKILL");
    }
  }, 30_000);

  it("WORKERS=2 spreads a burst of connections evenly (the worker with the fewest gets the next) and sends none to a draining worker", async () => {
    const port = await freePort();
    const proc = run({ REDIS_URL: redis.url, PORT: String(port), ADMIN_TOKEN: "t", WORKERS: "2", KEY_PREFIX: `spread-${port}` });
    try {
      await until(() => listeningPidsOf(proc).length >= 2, 10_000);
      await waitForHealth(port);
      const workers = listeningPidsOf(proc);
      // Eight HTTP/2 connections at once, as a load generator or a client pool opens them.
      const sessions = Array.from({ length: 8 }, () => http2.connect(`http://127.0.0.1:${port}`));
      try {
        await Promise.all(sessions.map(health));
        const pids = [...holders(port).values()];
        // The 8, and the kept-alive connection of the health check before them.
        expect(pids.length).toBeGreaterThanOrEqual(8);
        const [a = 0, b = 0] = workers.map((pid) => pids.filter((p) => p === pid).length);
        expect(a + b).toBe(pids.length);
        expect(Math.abs(a - b)).toBeLessThanOrEqual(1);

        // A worker told to stop on its own (not through the primary) gets no new connection while it drains.
        const [draining = 0] = workers;
        process.kill(draining, "SIGTERM");
        await new Promise((r) => setTimeout(r, 300));
        const later = Array.from({ length: 4 }, () => http2.connect(`http://127.0.0.1:${port}`));
        sessions.push(...later);
        await Promise.all(later.map(health));
        const held = holders(port);
        for (const session of later) {
          const holder = held.get(session.socket.localPort ?? 0);
          expect(holder).toBeDefined();
          expect(holder).not.toBe(draining);
        }
      } finally {
        for (const session of sessions) session.close();
      }
    } finally {
      proc.child.kill("SIGTERM");
      await proc.exited;
    }
  });

  it("workers whose primary was killed (-9) exit instead of holding the port, without a crash report", async () => {
    const port = await freePort();
    const proc = run({ REDIS_URL: redis.url, PORT: String(port), ADMIN_TOKEN: "t", WORKERS: "2", KEY_PREFIX: `orphans-${port}` });
    await until(() => listeningPidsOf(proc).length >= 2, 10_000);
    const workers = listeningPidsOf(proc);
    expect(workers).toHaveLength(2);
    // Mid-drain, as when a supervisor gives up waiting: SIGTERM, then SIGKILL.
    proc.child.kill("SIGTERM");
    await new Promise((r) => setTimeout(r, 5));
    proc.child.kill("SIGKILL");
    await until(() => !workers.some(isAlive), 5_000);
    expect(workers.filter(isAlive)).toEqual([]);
    expect(proc.stderr()).not.toMatch(/EPIPE|Unhandled/);
  });

  it("with no REDIS_URL and nothing on the dev port, starts its own redis-server (AOF on) and stops it on exit", async () => {
    const port = await freePort();
    const devRedisPort = await freePort();
    const cwd = mkdtempSync(join(tmpdir(), "tq-start-"));
    try {
      const proc = run({ PORT: String(port), DEV_REDIS_PORT: String(devRedisPort), ADMIN_TOKEN: "t" }, cwd);
      await waitForHealth(port);
      expect(await isListening("127.0.0.1", devRedisPort)).toBe(true);
      const res = await fetch(`http://127.0.0.1:${port}/reserve`, { method: "POST", body: "{}" });
      expect(res.status).toBe(200);
      const local = new Redis(devRedisPort, "127.0.0.1");
      expect(await local.config("GET", "appendonly")).toEqual(["appendonly", "yes"]);
      local.disconnect();
      proc.child.kill("SIGINT");
      expect(await proc.exited).toBe(0);
      expect(await isListening("127.0.0.1", devRedisPort)).toBe(false);
      expect(existsSync(join(cwd, "data"))).toBe(true);
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  });

  it.each(["1", "2"])("a port already taken, WORKERS=%s: one line saying so, exit 1, and the dev redis-server it started is stopped", async (workers) => {
    const taken = createServer();
    const port = await new Promise<number>((r) => taken.listen(0, "127.0.0.1", () => r((taken.address() as AddressInfo).port)));
    const devRedisPort = await freePort();
    const cwd = mkdtempSync(join(tmpdir(), "tq-start-"));
    try {
      const proc = run({ PORT: String(port), DEV_REDIS_PORT: String(devRedisPort), ADMIN_TOKEN: "t", WORKERS: workers }, cwd);
      expect(await proc.exited).toBe(1);
      expect(proc.stderr()).toContain(`ticket-queue: cannot listen on 127.0.0.1:${port}: listen EADDRINUSE`);
      expect(proc.stderr()).not.toMatch(/^\s+at /m);
      expect(await isListening("127.0.0.1", devRedisPort)).toBe(false);
    } finally {
      taken.close();
      rmSync(cwd, { recursive: true, force: true });
    }
  });

  it("WORKERS=2, workers that cannot start (a bad ADMIN_JWT_PUBLIC_KEY): a few tries with pauses, then exit 1, not a restart loop", async () => {
    const port = await freePort();
    const startedAt = Date.now();
    const proc = run({ REDIS_URL: redis.url, PORT: String(port), ADMIN_TOKEN: "t", WORKERS: "2", KEY_PREFIX: `broken-${port}`, ADMIN_JWT_PUBLIC_KEY: "garbage" });
    expect(await proc.exited).toBe(1);
    expect(Date.now() - startedAt).toBeLessThan(20_000);
    expect(proc.stderr()).toContain("ticket-queue: 3 workers died before serving (their errors are above): stopping");
    expect(proc.stdout().match(/worker died before serving/g)).toHaveLength(2);
  }, 30_000);

  it("WORKERS=1: SIGHUP (which rolls workers) leaves the one process serving, where node's default ended it at once", async () => {
    const port = await freePort();
    const proc = run({ REDIS_URL: redis.url, PORT: String(port), ADMIN_TOKEN: "t", WORKERS: "1", KEY_PREFIX: `hup-${port}` });
    await waitForHealth(port);
    proc.child.kill("SIGHUP");
    await new Promise((r) => setTimeout(r, 300));
    expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200);
    expect(proc.stdout()).toContain("with one process there is nothing to roll: ignored");
    proc.child.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
  });

  it("without redis-server installed, says how to get one", async () => {
    const devRedisPort = await freePort();
    // An empty PATH: redis-server cannot be found (node itself is started by absolute path).
    const emptyDir = mkdtempSync(join(tmpdir(), "tq-path-"));
    const proc = run({ PATH: emptyDir, DEV_REDIS_PORT: String(devRedisPort), PORT: "0" });
    expect(await proc.exited).toBe(1);
    rmSync(emptyDir, { recursive: true });
    expect(proc.stderr()).toContain("apt-get install redis-server");
    expect(proc.stderr()).toContain("brew install redis");
    expect(proc.stderr()).toContain("docker compose up");
  });
});

describe("rolling restart", () => {
  // With @grpc/grpc-js, which retries a stream the server refused unprocessed
  // (REFUSED_STREAM) as gRPC's transparent retry says. connect-node's client
  // reports such a stream as an error instead (see the closing note of issue #5).
  it("SIGHUP replaces every worker one by one while gRPC calls keep succeeding", async () => {
    const { TicketQueueService } = await import("../gen/ticketqueue/v1/ticket_queue_pb.js");
    const { createGrpcJsClient } = await import("../clients/grpc-js-client.js");
    const port = await freePort();
    const proc = run({ REDIS_URL: redis.url, PORT: String(port), ADMIN_TOKEN: "t", WORKERS: "2", KEY_PREFIX: `roll-${port}`, RATE_LIMIT_PER_MINUTE: "0" });
    const listening = (): number[] => listeningPidsOf(proc);
    await until(() => listening().length >= 2, 10_000);
    await waitForHealth(port);
    const before = listening();
    const client = createGrpcJsClient(TicketQueueService, `127.0.0.1:${port}`);
    let stop = false;
    let ok = 0;
    const failures: string[] = [];
    const loops = Array.from({ length: 8 }, async (_, l) => {
      for (let i = 0; !stop; i++) {
        try {
          await client.reserve({ userId: `roll-${l}-${i}` });
          ok++;
        } catch (err: unknown) {
          failures.push(String(err));
        }
      }
    });
    await new Promise((r) => setTimeout(r, 300));
    proc.child.kill("SIGHUP");
    await until(() => proc.stdout().includes("rolling restart done"), 15_000);
    await new Promise((r) => setTimeout(r, 300));
    stop = true;
    await Promise.all(loops);
    client.close();
    const after = listening().slice(before.length);
    expect(proc.stdout()).toContain("rolling restart done");
    expect(after).toHaveLength(2);
    for (const pid of before) expect(() => process.kill(pid, 0)).toThrow();
    expect(failures.slice(0, 3)).toEqual([]);
    expect(ok).toBeGreaterThan(100);
    proc.child.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
  }, 60_000);
});

describe("a rolling restart when workers die during it", () => {
  it("SIGHUP while the other old worker dies as the first new one starts: once the roll is done, WORKERS serve", async () => {
    const port = await freePort();
    const proc = run({ REDIS_URL: redis.url, PORT: String(port), ADMIN_TOKEN: "t", WORKERS: "2", KEY_PREFIX: `roll-one-dies-${port}` });
    const workers = (): number[] => childrenOf(proc.child.pid ?? 0);
    await until(() => workers().length >= 2, 10_000);
    await waitForHealth(port);
    const before = workers();
    proc.child.kill("SIGHUP");
    // The roll forks a third worker, then retires the first old one; the second dies meanwhile.
    await until(() => workers().length >= 3, 2_000, 10);
    const second = before[1];
    if (second === undefined) throw new Error("no second worker");
    process.kill(second, "SIGKILL");
    await until(() => proc.stdout().includes("rolling restart done"), 15_000);
    expect(proc.stdout()).toContain("rolling restart done");
    await until(() => listeningPidsOf(proc).filter((pid) => !before.includes(pid) && isAlive(pid)).length >= 2, 10_000);
    const serving = listeningPidsOf(proc).filter((pid) => isAlive(pid));
    expect(serving).toHaveLength(2);
    expect(serving.some((pid) => before.includes(pid))).toBe(false);
    proc.child.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
  }, 60_000);

  it("SIGHUP whose new worker is stuck before it serves (SIGSTOP): it is killed after four watchdog spans, the old one stays, and the roll ends", async () => {
    const port = await freePort();
    const proc = run({ REDIS_URL: redis.url, PORT: String(port), ADMIN_TOKEN: "t", WORKERS: "2", KEY_PREFIX: `roll-stuck-${port}`, WORKER_WATCHDOG_SECONDS: "2" });
    const workers = (): number[] => childrenOf(proc.child.pid ?? 0);
    await until(() => workers().length >= 2, 10_000);
    await waitForHealth(port);
    const before = workers();
    proc.child.kill("SIGHUP");
    await until(() => workers().length >= 3, 10_000, 5);
    const fresh = workers().find((pid) => !before.includes(pid));
    if (fresh === undefined) throw new Error("the roll forked no new worker");
    process.kill(fresh, "SIGSTOP");
    await until(() => proc.stdout().includes("rolling restart done"), 20_000);
    expect(proc.stdout()).toContain("the new worker died before it was ready: the old one stays");
    expect(proc.stdout()).toContain("rolling restart done");
    expect(isAlive(fresh ?? 0)).toBe(false);
    await until(() => workers().length === 2, 5_000);
    expect(workers()).toHaveLength(2);
    await waitForHealth(port);
    proc.child.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
  }, 60_000);

  it("SIGHUP with every old worker killed at once: the roll ends, WORKERS are left, and the next SIGHUP rolls again", async () => {
    const port = await freePort();
    const proc = run({ REDIS_URL: redis.url, PORT: String(port), ADMIN_TOKEN: "t", WORKERS: "2", KEY_PREFIX: `roll-dies-${port}` });
    const workers = (): number[] => childrenOf(proc.child.pid ?? 0);
    await until(() => workers().length >= 2, 10_000);
    await waitForHealth(port);
    const before = workers();
    expect(before).toHaveLength(2);
    proc.child.kill("SIGHUP");
    // Both die while the first new worker starts: its old one is dead by the time it is ready.
    await new Promise((r) => setTimeout(r, 50));
    for (const pid of before) process.kill(pid, "SIGKILL");
    await until(() => proc.stdout().includes("rolling restart done"), 15_000);
    expect(proc.stdout()).toContain("rolling restart done");
    await until(() => workers().length === 2, 5_000);
    expect(workers()).toHaveLength(2);
    await waitForHealth(port);
    // Not stuck "rolling": a second SIGHUP is a roll of its own.
    proc.child.kill("SIGHUP");
    await until(() => proc.stdout().split("rolling restart done").length >= 3, 15_000);
    expect(proc.stdout().split("rolling restart done")).toHaveLength(3);
    proc.child.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
  }, 60_000);
});

/** The live processes whose parent is `pid` (from /proc: procps may not be installed). */
function childrenOf(pid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so read after its last ")".
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const [state, ppid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(ppid) === pid && state !== "Z") found.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** A GET /health on an HTTP/2 session, answered. */
function health(session: http2.ClientHttp2Session): Promise<void> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ":path": "/health" });
    stream.on("response", () => resolve());
    stream.on("error", reject);
    stream.resume();
    stream.end();
  });
}

/** Client port -> pid of the process holding the server side of each connection to `port` (from ss). */
function holders(port: number): Map<number, number> {
  const out = spawnSync("ss", ["-tnpH", "state", "established", `( sport = :${port} )`], { encoding: "utf8" }).stdout;
  const held = new Map<number, number>();
  for (const line of out.split("\n")) {
    const match = /:(\d+)\s+users:.*pid=(\d+)/.exec(line);
    if (match) held.set(Number(match[1]), Number(match[2]));
  }
  return held;
}
