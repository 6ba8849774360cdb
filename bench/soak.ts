// npm run soak [-- minutes]: a long mixed run against `node dist/src/main.js`
// (WORKERS=2 by default) with Redis paused and workers killed along the way.
// Every minute it prints the service's RSS, heap, open descriptors and open
// streams; at the end it compares the last minutes with the first warm one.
// Not a test: it takes ten minutes by default and reports what it saw.
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { connect } from "node:net";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { TicketQueueService } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { freePort, waitListening } from "./ports.js";
import { benchScratch, startOwnRedisProcess } from "./scratch.js";

const MINUTES = Number(process.argv[2] ?? process.env["SOAK_MINUTES"] ?? 10);
const WORKERS = process.env["WORKERS"] ?? "2";
const CALLS_PER_SECOND = Number(process.env["SOAK_RATE"] ?? 300);
const WATCHERS = 200;
const ADMIN = { headers: { "x-token": "soak-token" } };

const scratch = benchScratch("soak");
const { children } = scratch;
const { port: redisPort, child: redis } = await startOwnRedisProcess(scratch);
const port = await freePort();
const service = spawn(process.execPath, ["dist/src/main.js"], {
  env: { ...process.env, PORT: String(port), HOST: "127.0.0.1", REDIS_URL: `redis://127.0.0.1:${redisPort}`, WORKERS, ADMIN_TOKEN: "soak-token", LOG_LEVEL: "warn", RATE_LIMIT_PER_MINUTE: "0" },
  stdio: ["ignore", "ignore", "inherit"],
});
children.push(service);
await waitListening(port);
await new Promise((r) => setTimeout(r, 1000));
const baseUrl = `http://127.0.0.1:${port}`;

const clients: Client<typeof TicketQueueService>[] = [
  createClient(TicketQueueService, createGrpcTransport({ baseUrl })),
  createClient(TicketQueueService, createGrpcWebTransport({ baseUrl, httpVersion: "1.1" })),
  createClient(TicketQueueService, createConnectTransport({ baseUrl, httpVersion: "2" })),
];
const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)] as T;
await clients[0]!.createEvent({ eventId: "soak", capacity: 200, holdSeconds: 5 }, ADMIN);

const counts = { ok: 0, unavailable: 0, other: 0, watches: 0 };
/** The other errors by code and first words, printed at the end. */
const others = new Map<string, number>();
const tally = async (call: () => Promise<unknown>): Promise<void> => {
  try {
    await call();
    counts.ok++;
  } catch (err: unknown) {
    const error = ConnectError.from(err);
    if (error.code === Code.Unavailable) counts.unavailable++;
    else {
      counts.other++;
      const key = `${Code[error.code] ?? error.code}: ${error.rawMessage.split(/[:(]/)[0]?.trim() ?? ""}`;
      others.set(key, (others.get(key) ?? 0) + 1);
    }
  }
};

let stopping = false;
let user = 0;
/** One mixed call: reserve 4, status 3, health 2, process_queue 1, cancel 1 (the old Locust weights), over a random transport or REST. */
async function oneCall(): Promise<void> {
  const client = pick(clients);
  const r = Math.random() * 11;
  if (r < 4) {
    if (Math.random() < 0.25) return tally(() => fetch(`${baseUrl}/v1/events/soak/reserve`, { method: "POST", body: JSON.stringify({ user_id: `u${user++}` }) }).then((res) => res.text()));
    return tally(() => client.reserve({ eventId: "soak", userId: `u${user++}` }));
  }
  if (r < 7) return tally(() => client.getStatus({ eventId: "soak", userId: `u${Math.floor(Math.random() * user)}` }));
  if (r < 9) return tally(() => fetch(`${baseUrl}/health`).then((res) => res.text()));
  if (r < 10) return tally(() => client.processQueue({ eventId: "soak" }, ADMIN));
  return tally(() => client.adminCancel({ eventId: "soak", userId: `u${Math.floor(Math.random() * user)}` }, ADMIN));
}

async function callLoop(): Promise<void> {
  const tickMs = 10;
  while (!stopping) {
    const started = performance.now();
    for (let i = 0; i < (CALLS_PER_SECOND * tickMs) / 1000; i++) void oneCall();
    await new Promise((r) => setTimeout(r, Math.max(0, tickMs - (performance.now() - started))));
  }
}

/** A watcher that lives 5-30 s (gRPC, gRPC-web, Connect or SSE), then is replaced. */
async function watcherLoop(): Promise<void> {
  while (!stopping) {
    const life = 5000 + Math.random() * 25_000;
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), life);
    try {
      const client = pick(clients);
      const { userId, ticket } = await client.reserve({ eventId: "soak", userId: `w${user++}` });
      counts.watches++;
      if (Math.random() < 0.25) {
        const res = await fetch(`${baseUrl}/v1/events/soak/watch?user_id=${userId}&ticket=${encodeURIComponent(ticket)}`, { signal: abort.signal });
        for await (const _ of res.body ?? []) if (abort.signal.aborted) break;
      } else {
        for await (const _ of client.watchStatus({ eventId: "soak", userId, ticket }, { signal: abort.signal })) if (abort.signal.aborted) break;
      }
    } catch {
      await new Promise((r) => setTimeout(r, 200));
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Clients that misbehave: connections left idle, a preface then silence, a FIN mid-request. */
async function rudeLoop(): Promise<void> {
  while (!stopping) {
    const socket = connect(port, "127.0.0.1");
    socket.on("error", () => undefined);
    const kind = Math.random();
    if (kind < 0.33) socket.write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    else if (kind < 0.66) socket.end("POST /reserve HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{");
    setTimeout(() => socket.destroy(), 20_000 + Math.random() * 20_000);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The service's processes: the primary and its workers, read from /proc. */
function servicePids(): number[] {
  const pids = [service.pid ?? 0];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === service.pid) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

interface Reading {
  minute: number;
  rssMb: number;
  heapMb: number;
  fds: number;
  streams: number;
  ok: number;
  unavailable: number;
  other: number;
  watches: number;
}

async function reading(minute: number): Promise<Reading> {
  let rss = 0;
  let fds = 0;
  for (const pid of servicePids()) {
    try {
      rss += Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) * 1024;
      fds += readdirSync(`/proc/${pid}/fd`).length;
    } catch {
      // a worker that was just replaced
    }
  }
  const text = await fetch(`${baseUrl}/metrics`).then((r) => r.text(), () => "");
  const value = (name: string): number => Number(new RegExp(`^${name} ([\\d.e+]+)`, "m").exec(text)?.[1] ?? NaN);
  return { minute, rssMb: rss / 1e6, heapMb: value("ticketqueue_nodejs_heap_size_used_bytes") / 1e6, fds, streams: value("ticketqueue_open_streams"), ...counts };
}

const faults = (async () => {
  let n = 0;
  while (!stopping) {
    await new Promise((r) => setTimeout(r, 45_000));
    if (stopping) break;
    if (n++ % 2 === 0) {
      redis.kill("SIGSTOP");
      await new Promise((r) => setTimeout(r, 3000));
      redis.kill("SIGCONT");
      console.log(`  fault: redis paused for 3 s`);
    } else {
      const worker = servicePids().find((pid) => pid !== service.pid);
      if (worker) process.kill(worker, "SIGKILL");
      console.log(`  fault: worker ${worker ?? "(none: WORKERS=1)"} killed -9`);
    }
  }
})();

console.log(`soak: ${MINUTES} min, WORKERS=${WORKERS}, ~${CALLS_PER_SECOND} calls/s mixed (gRPC, gRPC-web, Connect, REST), ${WATCHERS} watchers churning every 5-30 s, rude connections 10/s; redis paused 3 s and a worker killed -9 in turn every 45 s`);
const loops = [callLoop(), ...Array.from({ length: WATCHERS }, () => watcherLoop()), rudeLoop()];
const readings: Reading[] = [];
const format = (r: Reading): string =>
  `min ${String(r.minute).padStart(2)}: RSS ${r.rssMb.toFixed(0)} MB, heap ${r.heapMb.toFixed(1)} MB, fds ${r.fds}, open streams ${r.streams}; so far: calls ok ${r.ok}, unavailable ${r.unavailable}, other errors ${r.other}, watch streams opened ${r.watches}`;
for (let minute = 1; minute <= MINUTES; minute++) {
  await new Promise((r) => setTimeout(r, 60_000));
  const r = await reading(minute);
  readings.push(r);
  console.log(format(r));
}
stopping = true;
await Promise.race([Promise.all([...loops, faults]), new Promise((r) => setTimeout(r, 35_000))]);
await new Promise((r) => setTimeout(r, 2000));
const idle = await reading(MINUTES + 1);
console.log(`after the load stopped: RSS ${idle.rssMb.toFixed(0)} MB, heap ${idle.heapMb.toFixed(1)} MB, fds ${idle.fds}, open streams ${idle.streams}`);

if (others.size > 0) console.log(`other errors: ${[...others].map(([k, n]) => `${n} × ${k}`).join("; ")}`);

// Growth once warm: the warm minutes (from the second) split in halves, their means
// compared. Single readings swing with garbage collection and with a killed worker's
// fresh replacement; a leak shows as a second half above the first.
const warm = readings.slice(1);
if (warm.length >= 2) {
  const half = Math.floor(warm.length / 2);
  const mean = (rows: Reading[], f: (r: Reading) => number): number => rows.reduce((n, r) => n + f(r), 0) / rows.length;
  for (const [name, f] of [["RSS MB", (r: Reading) => r.rssMb], ["heap MB", (r: Reading) => r.heapMb], ["fds", (r: Reading) => r.fds], ["open streams", (r: Reading) => r.streams]] as const) {
    const first = mean(warm.slice(0, half), f);
    const second = mean(warm.slice(half), f);
    const values = warm.map(f);
    console.log(`${name}: minutes 2-${half + 1} mean ${first.toFixed(1)}, minutes ${half + 2}-${MINUTES} mean ${second.toFixed(1)} (${(((second - first) / Math.max(first, 1e-9)) * 100).toFixed(1)} %), range ${Math.min(...values).toFixed(1)}-${Math.max(...values).toFixed(1)}`);
  }
}
process.exit(0);
