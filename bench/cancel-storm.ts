// node dist/bench/cancel-storm.js [watchers] [cancels]: people leaving the front of
// a watched line. One service process (WORKERS=1) with `watchers` open gRPC
// WatchStatus streams behind `cancels` users at the front of the queue; the front
// users are cancelled one after another (AdminCancel, each waiting for its answer),
// and each cancel moves every watcher up one place. Reports cancels per second,
// the messages the watchers were sent, and checks each watcher's last position.
// Not a test: timings never decide anything.
import { setMaxListeners } from "node:events";
import { spawn } from "node:child_process";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { TicketQueueService } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { freePort, waitListening } from "./ports.js";
import { benchScratch, serviceEnv, startOwnRedis } from "./scratch.js";

const WATCHERS = Number(process.argv[2] ?? 2_000);
const CANCELS = Number(process.argv[3] ?? 200);
const PER_CONNECTION = 500;
const ADMIN = { headers: { "x-token": "storm-token" } };
const EVENT = "storm";

const scratch = benchScratch("storm");
const redisPort = await startOwnRedis(scratch);
const port = await freePort();
const service = spawn(process.execPath, ["dist/src/main.js"], {
  env: serviceEnv(port, redisPort, "storm-token", { MAX_STREAMS: String(WATCHERS * 2 + 100) }),
  stdio: ["ignore", "ignore", "inherit"],
});
scratch.children.push(service);
await waitListening(port);
const baseUrl = `http://127.0.0.1:${port}`;
const admin = createClient(TicketQueueService, createGrpcTransport({ baseUrl }));
await admin.createEvent({ eventId: EVENT, capacity: 1 }, ADMIN);
// The seat, then the ones who will leave, then the watchers.
await admin.reserve({ eventId: EVENT, userId: "seated" });
for (let i = 0; i < CANCELS; i++) await admin.reserve({ eventId: EVENT, userId: `leaves-${i}` });
const watchers: { userId: string; ticket: string; position: number; messages: number }[] = [];
for (let i = 0; i < WATCHERS; i += 200) {
  const batch = await Promise.all(Array.from({ length: Math.min(200, WATCHERS - i) }, (_, j) => admin.reserve({ eventId: EVENT, userId: `w${i + j}` })));
  watchers.push(...batch.map((r) => ({ userId: r.userId, ticket: r.ticket, position: r.position, messages: 0 })));
}

const stop = new AbortController();
setMaxListeners(0, stop.signal); // one controller ends every watch: not a leak
const clients = Array.from({ length: Math.ceil(WATCHERS / PER_CONNECTION) }, () => createClient(TicketQueueService, createGrpcTransport({ baseUrl })));
const opened = watchers.map(
  (w, i) =>
    new Promise<void>((resolve) => {
      void (async () => {
        try {
          for await (const m of clients[Math.floor(i / PER_CONNECTION)]!.watchStatus({ eventId: EVENT, userId: w.userId, ticket: w.ticket }, { signal: stop.signal })) {
            w.messages++;
            w.position = m.position;
            resolve();
          }
        } catch {
          // stopped at the end
        } finally {
          resolve();
        }
      })();
    }),
);
await Promise.all(opened);
const before = watchers.map((w) => w.position);
for (const w of watchers) w.messages = 0;

const started = performance.now();
for (let i = 0; i < CANCELS; i++) await admin.adminCancel({ eventId: EVENT, userId: `leaves-${i}` }, ADMIN);
const seconds = (performance.now() - started) / 1000;
// The last moves reach every watcher.
const settled = (): boolean => watchers.every((w, i) => w.position === (before[i] ?? 0) - CANCELS);
for (let i = 0; i < 100 && !settled(); i++) await new Promise((r) => setTimeout(r, 100));
const messages = watchers.reduce((n, w) => n + w.messages, 0);
console.log(
  `${CANCELS} cancels with ${WATCHERS} watchers behind them: ${(CANCELS / seconds).toFixed(0)} cancels/s (${seconds.toFixed(2)} s); ` +
    `${messages} messages to the watchers (${(messages / WATCHERS).toFixed(1)} each); every watcher at its last position: ${settled() ? "yes" : "NO"}`,
);
stop.abort();
process.exit(0);
