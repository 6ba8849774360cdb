// node dist/bench/sweep-cost.js [events] [seconds]: what the hold sweepers cost Redis
// with nothing to sweep. (1) The service with WORKERS processes (default 4) and
// `events` idle events: scripts per second and Redis time per second over
// `seconds`, from INFO commandstats, against what every worker sweeping every
// event would make (workers × events × 4/s). (2) One event called directly,
// 20,000 times each: a sweep, a call another sweeper's lease turns away, and a
// GetStatus, in Redis microseconds per call. Its own redis-server, no persistence.
import { spawn } from "node:child_process";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { TicketQueueService } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { QueueStore } from "../src/queue/queue-store.js";
import { createRedisClient } from "../src/redis/redis-client.js";
import { freePort, waitListening } from "./ports.js";
import { benchScratch, startOwnRedis } from "./scratch.js";

const EVENTS = Number(process.argv[2] ?? 100);
const SECONDS = Number(process.argv[3] ?? 20);
const WORKERS = Number(process.env["WORKERS"] ?? 4);
const SWEEPS_PER_SECOND = 4;

const scratch = benchScratch("sweep");
const { children } = scratch;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const redisPort = await startOwnRedis(scratch);
const redis = createRedisClient({ url: `redis://127.0.0.1:${redisPort}`, commandTimeoutMs: 10_000 });
await redis.connect();

/** evalsha's calls and Redis microseconds since the last CONFIG RESETSTAT. */
async function scripts(): Promise<{ calls: number; usec: number }> {
  const line = /cmdstat_evalsha:calls=(\d+),usec=(\d+)/.exec(await redis.info("commandstats"));
  return { calls: Number(line?.[1] ?? 0), usec: Number(line?.[2] ?? 0) };
}

// (1) The service, idle events.
const port = await freePort();
children.push(
  spawn(process.execPath, ["dist/src/main.js"], {
    env: { ...process.env, PORT: String(port), HOST: "127.0.0.1", REDIS_URL: `redis://127.0.0.1:${redisPort}`, WORKERS: String(WORKERS), ADMIN_TOKEN: "sweep-token", LOG_LEVEL: "warn", RATE_LIMIT_PER_MINUTE: "0" },
    stdio: ["ignore", "inherit", "inherit"],
  }),
);
await waitListening(port);
const client = createClient(TicketQueueService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
for (let i = 0; i < EVENTS; i++) await client.createEvent({ eventId: `idle-${i}`, capacity: 100, holdSeconds: 60 }, { headers: { "x-token": "sweep-token" } });
await sleep(3000);
await redis.config("RESETSTAT");
const started = performance.now();
await sleep(SECONDS * 1000);
const { calls, usec } = await scripts();
const seconds = (performance.now() - started) / 1000;
console.log(`WORKERS=${WORKERS}, ${EVENTS} idle events, ${seconds.toFixed(1)} s: ${Math.round(calls / seconds)} scripts/s, ${(usec / seconds / 1000).toFixed(1)} ms of Redis time per second; every worker sweeping every event would make ${WORKERS * EVENTS * SWEEPS_PER_SECOND} scripts/s`);
for (const child of children.splice(1)) child.kill("SIGTERM");

// (2) One event, called directly.
const store = new QueueStore(redis, { prefix: "sweep-cost", defaultCapacity: 1 });
await store.createEvent("e", { name: "e", capacity: 100, holdSeconds: 60, opensAt: 0, closesAt: 0 });
for (let i = 0; i < 150; i++) await store.reserve("e", `u${i}`);
const holder = { id: "holder", leaseMs: 3_600_000 };
const other = { id: "other", leaseMs: 3_600_000 };
const kinds: [string, () => Promise<unknown>][] = [
  ["a sweep that finds nothing (the lease's holder)", () => store.expireHolds("e", 1000, holder)],
  ["a call the lease turns away", () => store.expireHolds("e", 1000, other)],
  ["a GetStatus, for scale", () => store.status("e", "u120")],
];
for (const [what, call] of kinds) {
  await call();
  await redis.config("RESETSTAT");
  for (let i = 0; i < 20_000; i++) await call();
  const stats = await scripts();
  console.log(`${what}: ${(stats.usec / stats.calls).toFixed(1)} µs of Redis time per call (${stats.calls} calls, 100 waiting and 50 seated)`);
}
redis.disconnect();
process.exit(0);
