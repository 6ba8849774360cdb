// npm run bench:burst [-- watchers]: the opening burst. N travellers join at once,
// each from its own HTTP/1.1 connection (a gRPC-web Reserve), then keeps a live
// status stream on it (gRPC-web server streaming; every BURST_SSE_EVERY-th one
// Server-Sent Events). Then seats free up, a hundred at a time, and each waiting
// watcher must be told it moved. Reports joins/s, heap and RSS per open watcher
// (heap after a full collection, summed over the service's processes), and the
// time from the promoting call to each watcher told (p50/p99/max). Verifies its
// counts in Redis. Not a test: timings never decide anything; run on a quiet machine.
import { fork, spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { createRedisClient } from "../src/redis/redis-client.js";
import { TicketQueueService } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { eventKeys } from "../src/queue/keys.js";
import type { ClientStart, FromClient, ToClient } from "./burst-travellers.js";
import { startTestCluster } from "../test/helpers/redis-cluster.js";
import { freePort, waitListening } from "./ports.js";
import { benchScratch, startOwnRedis } from "./scratch.js";

const WATCHERS = Number(process.argv[2] ?? process.env["BURST_WATCHERS"] ?? 20_000);
const WORKERS = Number(process.env["WORKERS"] ?? availableParallelism());
const SSE_EVERY = Number(process.env["BURST_SSE_EVERY"] ?? 10);
/** Sockets per client process: each process may hold only `ulimit -n` descriptors. */
const PER_CLIENT = Number(process.env["BURST_PER_CLIENT"] ?? 5_000);
/** BURST_JOINS_PER_SECOND: joins paced at this rate over all clients (a ramp, to find how many watchers a machine holds); 0: the burst. */
const JOINS_PER_SECOND = Number(process.env["BURST_JOINS_PER_SECOND"] ?? 0);
const ROUNDS = 5;
const SEATS_PER_ROUND = 100;
const FIRST_SEATS = 100;
const EVENT = "burst";
const ADMIN = { headers: { "x-token": "burst-token" } };
const now = (): number => performance.timeOrigin + performance.now();

const scratch = benchScratch("burst");
const { children, dir } = scratch;
const fds = Number(spawnSync("sh", ["-c", "ulimit -n"], { encoding: "utf8" }).stdout.trim());
console.log(`${WATCHERS} travellers${JOINS_PER_SECOND > 0 ? ` joining at ${JOINS_PER_SECOND}/s` : ""}, WORKERS=${WORKERS}, every ${SSE_EVERY}th on SSE, ${Math.ceil(WATCHERS / PER_CLIENT)} client processes; open files per process: ${fds}`);
// The kernel caps every listen backlog at this: a burst past it waits for TCP's retries (1 s, 3 s, 7 s...).
const somaxconn = existsSync("/proc/sys/net/core/somaxconn") ? Number(readFileSync("/proc/sys/net/core/somaxconn", "utf8")) : Number.NaN;
console.log(`net.core.somaxconn: ${somaxconn}${somaxconn < WATCHERS ? " (below the burst: sysctl -w net.core.somaxconn=65535 lets the kernel hold it)" : ""}`);
if (fds < WATCHERS / WORKERS + 1000) console.log(`warning: ${fds} descriptors per process may not hold ${Math.ceil(WATCHERS / WORKERS)} connections per worker`);

const redisPort = await startOwnRedis(scratch);
// BURST_REDIS_CLUSTER=1: the service on the test Redis Cluster (3 masters, 3 replicas) instead.
const cluster = process.env["BURST_REDIS_CLUSTER"] ? await startTestCluster() : undefined;
// (the service's own client factory: a Cluster client when given nodes)
const redis = createRedisClient({ url: `redis://127.0.0.1:${redisPort}`, clusterNodes: cluster?.nodes, commandTimeoutMs: 10_000 });
await redis.connect();
if (cluster) console.log(`on a Redis Cluster: ${cluster.nodes.join(", ")}`);
const port = await freePort();
// BURST_SERVICE_NODE_ARGS: more node flags for the service, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof".
const serviceArgs = (process.env["BURST_SERVICE_NODE_ARGS"] ?? "").split(" ").filter((a) => a !== "");
const service = spawn(process.execPath, [...serviceArgs, "--expose-gc", "--import", "./dist/bench/heap-probe.js", "dist/src/main.js"], {
  env: {
    ...process.env,
    PORT: String(port),
    HOST: "127.0.0.1",
    REDIS_URL: `redis://127.0.0.1:${redisPort}`,
    ...(cluster ? { REDIS_CLUSTER_NODES: cluster.nodes.join(",") } : {}),
    WORKERS: String(WORKERS),
    ADMIN_TOKEN: "burst-token",
    KEY_PREFIX: "burst",
    LOG_LEVEL: "warn",
    RATE_LIMIT_PER_MINUTE: "0",
    REDIS_COMMAND_TIMEOUT_MS: "10000",
    MAX_STREAMS: String(WATCHERS * 2),
    MAX_CONNECTIONS: String(WATCHERS * 2),
    HEAP_PROBE_FILE: join(dir, "heap"),
  },
  // BURST_SERVICE_STDOUT=1: the service's own output too (e.g. with --trace-gc).
  stdio: ["ignore", process.env["BURST_SERVICE_STDOUT"] ? "inherit" : "ignore", "inherit"],
});
children.push(service);
await waitListening(port);
await new Promise((r) => setTimeout(r, 1000)); // every worker up
const admin = createClient(TicketQueueService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
await admin.createEvent({ eventId: EVENT, capacity: FIRST_SEATS }, ADMIN);

const before = await memory();

// The clients: each a process of its own, started and ready before the burst.
const clients = Array.from({ length: Math.ceil(WATCHERS / PER_CLIENT) }, () => fork("dist/bench/burst-travellers.js", { stdio: ["ignore", "inherit", "inherit", "ipc"] }));
children.push(...clients);
const inbox: FromClient[] = [];
const waiters: (() => void)[] = [];
for (const c of clients) {
  c.on("message", (m: FromClient) => {
    inbox.push(m);
    waiters.splice(0).forEach((w) => w());
  });
}
const tell = (m: ToClient): void => clients.forEach((c) => c.send(m));
async function collect<K extends FromClient["kind"]>(kind: K): Promise<Extract<FromClient, { kind: K }>[]> {
  for (;;) {
    const got = inbox.filter((m): m is Extract<FromClient, { kind: K }> => m.kind === kind);
    if (got.length === clients.length) {
      inbox.splice(0, inbox.length, ...inbox.filter((m) => m.kind !== kind));
      return got;
    }
    await new Promise<void>((resolve) => waiters.push(resolve));
  }
}

clients.forEach((c, i) => {
  const start: ClientStart = { port, eventId: EVENT, first: i * PER_CLIENT, count: Math.min(PER_CLIENT, WATCHERS - i * PER_CLIENT), sseEvery: SSE_EVERY, sourceAddresses: Math.max(1, Math.ceil(WATCHERS / 20_000)), joinsPerSecond: JOINS_PER_SECOND / clients.length };
  c.send({ kind: "start", start } satisfies ToClient);
});
const joined = await collect("joined");
console.log(`joined: ${joined.reduce((n, j) => n + j.answeredAt.length, 0)} answered, ${joined.reduce((n, j) => n + j.failed.length, 0)} failed; opening the watches`);
const answered = joined.flatMap((j) => j.answeredAt).sort((a, b) => a - b);
const sentAt = Math.min(...joined.map((j) => j.sentAt));
const joinFailures = joined.flatMap((j) => j.failed);
if (process.env["BURST_SHOW_FAILURES"]) for (const f of joinFailures.slice(0, Number(process.env["BURST_SHOW_FAILURES"]))) console.log(`  ${f}`);
const joinSeconds = ((answered.at(-1) ?? sentAt) - sentAt) / 1000;
const joinedBy = (q: number): string => (((answered[Math.min(answered.length - 1, Math.floor(answered.length * q))] ?? sentAt) - sentAt) / 1000).toFixed(2);
const watching = await collect("watching");
console.log(`watching: ${watching.reduce((n, w) => n + w.grpcWeb + w.sse, 0)} open (${watching.reduce((n, w) => n + w.reconnected, 0)} asked for again on a new connection, the kept-alive one closed); promotions`);
const grpcWeb = watching.reduce((n, w) => n + w.grpcWeb, 0);
const sse = watching.reduce((n, w) => n + w.sse, 0);
const watchFailures = watching.flatMap((w) => w.failed);
await new Promise((r) => setTimeout(r, 1000));
const during = await memory();
const open = grpcWeb + sse;

// Rounds: a capacity raise of SEATS_PER_ROUND seats (one script) moves every waiting watcher.
const latencies: number[] = [];
/** The SSE watchers' share of them (the REST gateway's path). */
const sseLatencies: number[] = [];
let silent = 0;
let capacity = FIRST_SEATS;
for (let round = 0; round < ROUNDS; round++) {
  tell({ kind: "mark", round });
  await new Promise((r) => setTimeout(r, 200));
  capacity += SEATS_PER_ROUND;
  const t0 = now();
  await admin.updateEvent({ eventId: EVENT, capacity }, ADMIN);
  await new Promise((r) => setTimeout(r, 3000));
  tell({ kind: "report", round });
  for (const r of await collect("round")) {
    latencies.push(...r.toldAt.map((t) => t - t0));
    sseLatencies.push(...r.toldAtSse.map((t) => t - t0));
    silent += r.silent;
  }
}
latencies.sort((a, b) => a - b);
sseLatencies.sort((a, b) => a - b);
const pctOf = (of: number[], q: number): number => of[Math.min(of.length - 1, Math.floor(of.length * q))] ?? Number.NaN;
const pct = (q: number): number => pctOf(latencies, q);

// The bench's own check: every answered traveller recorded (seated or waiting), none
// twice, seats within capacity. A traveller whose answer never came (the client gave
// up) may be recorded too: counted apart, as a client's retry would find them.
const [, seatsKey = "", waitingKey = ""] = eventKeys("burst", EVENT);
const seats = await redis.hlen(seatsKey);
const waitingCount = await redis.zcard(waitingKey);
const seated = await redis.hkeys(seatsKey);
const both = seated.length > 0 ? (await redis.zmscore(waitingKey, ...seated)).filter((s) => s !== null).length : 0;
const answeredIds = joined.flatMap((j) => j.answered).map((i) => `t${i}`);
const seatedSet = new Set(seated);
let missing = 0;
for (let i = 0; i < answeredIds.length; i += 1000) {
  const batch = answeredIds.slice(i, i + 1000).filter((id) => !seatedSet.has(id));
  if (batch.length > 0) missing += (await redis.zmscore(waitingKey, ...batch)).filter((s) => s === null).length;
}
const unanswered = seats + waitingCount - (answeredIds.length - missing);
const exact = missing === 0 && seats <= capacity && both === 0;

tell({ kind: "close" });
await collect("closed");
await new Promise((r) => setTimeout(r, 1500));
const after = await memory();

const mb = (bytes: number): string => (bytes / 1e6).toFixed(1);
console.log(
  [
    "",
    `| measure | value |`,
    `|---|---|`,
    `| travellers joined (gRPC-web Reserve, HTTP/1.1, a connection each) | ${answered.length} of ${WATCHERS} in ${joinSeconds.toFixed(2)} s (half by ${joinedBy(0.5)} s, 90 % by ${joinedBy(0.9)} s): **${Math.round(answered.length / joinSeconds)} joins/s**${joinFailures.length ? `; ${joinFailures.length} failed (${joinFailures[0]})` : ""} |`,
    `| live status streams open | ${open} (${grpcWeb} gRPC-web, ${sse} SSE)${watchFailures.length ? `; ${watchFailures.length} failed: ${byReason(watchFailures)}` : ""} |`,
    `| heap (after a full GC, all processes) | ${mb(before.heap)} MB → ${mb(during.heap)} MB open → ${mb(after.heap)} MB closed: **${Math.round((during.heap - before.heap) / open)} bytes per watcher** |`,
    `| RSS (all processes) | ${mb(before.rss)} MB → ${mb(during.rss)} MB open: **${Math.round((during.rss - before.rss) / open)} bytes per watcher** |`,
    `| promotion to watcher told (${ROUNDS} capacity raises of ${SEATS_PER_ROUND}; ${latencies.length} notices) | p50 ${pct(0.5).toFixed(0)} ms, **p99 ${pct(0.99).toFixed(0)} ms**, max ${(latencies.at(-1) ?? Number.NaN).toFixed(0)} ms; not told within 3 s: ${silent}; of them over SSE: p50 ${pctOf(sseLatencies, 0.5).toFixed(0)} ms, p99 ${pctOf(sseLatencies, 0.99).toFixed(0)} ms |`,
    `| check | ${exact ? "verified" : "MISMATCH"}: ${answeredIds.length - missing} of ${answeredIds.length} answered travellers recorded, ${both} both seated and waiting, ${seats} seats ≤ ${capacity}; ${unanswered} recorded whose answer the client did not see |`,
  ].join("\n"),
);
redis.disconnect();
// The service stops as on a deploy (SIGTERM), so that what it writes at exit (a --cpu-prof profile) is written.
const stopped = new Promise((resolve) => service.once("exit", resolve));
service.kill("SIGTERM");
await Promise.race([stopped, new Promise((r) => setTimeout(r, 15_000))]);
for (const c of children) c.kill("SIGTERM");
await cluster?.dispose();
process.exit(0);

/**
 * Heap after a full collection and RSS, summed over the service's primary and
 * workers. With BURST_SERVICE_NODE_ARGS="--heapsnapshot-signal=SIGUSR1" each
 * reading also writes a heap snapshot of every process (into the working
 * directory), to compare what the watchers hold.
 */
async function memory(): Promise<{ heap: number; rss: number }> {
  const pids = [service.pid ?? 0, ...childPids(service.pid ?? 0)];
  if (serviceArgs.some((a) => a.startsWith("--heapsnapshot-signal"))) {
    for (const pid of pids) process.kill(pid, "SIGUSR1");
    await new Promise((r) => setTimeout(r, 5000));
  }
  for (const file of readdirSync(dir).filter((f) => f.startsWith("heap."))) rmSync(join(dir, file));
  for (const pid of pids) process.kill(pid, "SIGUSR2");
  for (let i = 0; i < 400 && !pids.every((pid) => existsSync(join(dir, `heap.${pid}`))); i++) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 50));
  let heap = 0;
  let rss = 0;
  for (const pid of pids) {
    heap += (JSON.parse(readFileSync(join(dir, `heap.${pid}`), "utf8")) as { heapUsed: number }).heapUsed;
    rss += Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) * 1024;
  }
  return { heap, rss };
}

function childPids(pid: number): number[] {
  const out = spawnSync("pgrep", ["-P", String(pid)], { encoding: "utf8" }).stdout.trim();
  return out === "" ? [] : out.split("\n").map(Number);
}

/** Failures counted by reason (the traveller's number left out), most frequent first. */
function byReason(failures: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const f of failures) {
    const reason = f.replace(/traveller \d+: /, "");
    counts.set(reason, (counts.get(reason) ?? 0) + 1);
  }
  return [...counts].sort((a, b) => b[1] - a[1]).map(([reason, n]) => `${n} × ${reason}`).join("; ");
}
