// node dist/bench/stream-heap.js [streams]: heap per open WatchStatus stream (and
// per Health.Watch stream) in one service process (WORKERS=1). The service runs
// with bench/heap-probe.js, which collects garbage before each reading; the
// bytes per stream are (heap with the streams open - heap before) / streams.
import { spawn } from "node:child_process";
import { setMaxListeners } from "node:events";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import * as http2 from "node:http2";
import { Health } from "../gen/health/v1/health_pb.js";
import { TicketQueueService } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { freePort, waitListening } from "./ports.js";
import { benchScratch, serviceEnv, startOwnRedis } from "./scratch.js";

const STREAMS = Number(process.argv[2] ?? 10_000);
const PER_CONNECTION = 500;
const ADMIN = { headers: { "x-token": "heap-token" } };

const scratch = benchScratch("heap");
const { children, dir } = scratch;
const probeFile = join(dir, "heap.json");

const redisPort = await startOwnRedis(scratch);
const port = await freePort();
const service = spawn(process.execPath, ["--expose-gc", "--import", "./dist/bench/heap-probe.js", "dist/src/main.js"], {
  env: serviceEnv(port, redisPort, "heap-token", { MAX_STREAMS: String(STREAMS * 2 + 100), HEAP_PROBE_FILE: probeFile }),
  stdio: ["ignore", "ignore", "inherit"],
});
children.push(service);
await waitListening(port);
const baseUrl = `http://127.0.0.1:${port}`;

async function heapUsed(): Promise<number> {
  const file = `${probeFile}.${service.pid ?? 0}`;
  rmSync(file, { force: true });
  service.kill("SIGUSR2");
  for (let i = 0; i < 200 && !existsSync(file); i++) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 50));
  return (JSON.parse(readFileSync(file, "utf8")) as { heapUsed: number }).heapUsed;
}

function clients<S extends typeof TicketQueueService | typeof Health>(service: S, n: number, web = false): Client<S>[] {
  const transport = (): ReturnType<typeof createGrpcTransport> =>
    web ? createGrpcWebTransport({ baseUrl, httpVersion: "2", nodeOptions: { maxSessionMemory: 64 } }) : createGrpcTransport({ baseUrl, nodeOptions: { maxSessionMemory: 64 } });
  return Array.from({ length: Math.ceil(n / PER_CONNECTION) }, () => createClient(service, transport()));
}

/** Server-Sent Events over HTTP/2: resolves at the first event; the stream stays open until the signal. */
function sse(session: http2.ClientHttp2Session, path: string, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    const stream = session.request({ ":path": path });
    stream.on("data", () => resolve());
    stream.on("close", () => resolve());
    stream.on("error", () => resolve());
    signal.addEventListener("abort", () => stream.close(), { once: true });
  });
}

const admin = createClient(TicketQueueService, createGrpcTransport({ baseUrl }));
await admin.createEvent({ eventId: "heap", capacity: 1 }, ADMIN);
const users: { userId: string; ticket: string }[] = [];
for (let i = 0; i < STREAMS; i += 200) {
  const batch = await Promise.all(Array.from({ length: Math.min(200, STREAMS - i) }, (_, j) => admin.reserve({ eventId: "heap", userId: `u${i + j}` })));
  users.push(...batch.map((r) => ({ userId: r.userId, ticket: r.ticket })));
}

async function measure(name: string, open: (abort: AbortSignal) => Promise<void>[]): Promise<void> {
  const before = await heapUsed();
  const abort = new AbortController();
  setMaxListeners(0, abort.signal); // one controller ends many calls: not a leak
  const started = open(abort.signal);
  await Promise.all(started);
  const during = await heapUsed();
  abort.abort();
  await new Promise((r) => setTimeout(r, 1000));
  const after = await heapUsed();
  console.log(`${name}: ${STREAMS} streams, heap ${(before / 1e6).toFixed(1)} MB → ${(during / 1e6).toFixed(1)} MB open → ${(after / 1e6).toFixed(1)} MB closed: ${Math.round((during - before) / STREAMS)} bytes per stream`);
}

/** Resolves once the stream's first message arrived; the stream stays open until the signal. */
function firstMessage(iterable: AsyncIterable<unknown>): Promise<void> {
  return new Promise<void>((resolve) => {
    void (async () => {
      try {
        for await (const _ of iterable) resolve();
      } finally {
        resolve(); // an error or the end also counts: the stream is settled
      }
    })().catch(() => undefined);
  });
}

const watchClients = clients(TicketQueueService, STREAMS);
await measure("WatchStatus", (signal) =>
  users.map((u, i) => firstMessage(watchClients[Math.floor(i / PER_CONNECTION)]!.watchStatus({ eventId: "heap", userId: u.userId, ticket: u.ticket }, { signal }))),
);
const webClients = clients(TicketQueueService, STREAMS, true);
await measure("WatchStatus over gRPC-web (HTTP/2)", (signal) =>
  users.map((u, i) => firstMessage(webClients[Math.floor(i / PER_CONNECTION)]!.watchStatus({ eventId: "heap", userId: u.userId, ticket: u.ticket }, { signal }))),
);
const sessions = Array.from({ length: Math.ceil(STREAMS / PER_CONNECTION) }, () => http2.connect(baseUrl, { maxSessionMemory: 64 }));
await measure("WatchStatus as Server-Sent Events (HTTP/2)", (signal) =>
  users.map((u, i) => sse(sessions[Math.floor(i / PER_CONNECTION)]!, `/v1/events/heap/watch?user_id=${u.userId}&ticket=${u.ticket}`, signal)),
);
sessions.forEach((s) => s.close());
const healthClients = clients(Health, STREAMS);
await measure("Health.Watch", (signal) => users.map((_, i) => firstMessage(healthClients[Math.floor(i / PER_CONNECTION)]!.watch({}, { signal }))));
process.exit(0);
