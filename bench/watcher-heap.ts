// node dist/bench/watcher-heap.js [watchers] [sse]: what one open HTTP/1.1 watch
// holds in the service, object by object, from V8 heap snapshots of one service
// process (WORKERS=1). It opens N watchers (gRPC-web, or SSE), takes a snapshot,
// opens N more and takes another: the objects new in the last one, over N, are
// one watcher's (what the first round compiled or allocated once is not in it),
// grouped by kind and by what holds them. bench:burst measures the same from
// heapUsed; this says where it goes.
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { TicketQueueService, WatchStatusRequestSchema } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { freePort, waitListening } from "./ports.js";
import { benchScratch, startOwnRedis } from "./scratch.js";

const WATCHERS = Number(process.argv[2] ?? 2000);
const SSE = process.argv[3] === "sse";
const TOP = 25;

const scratch = benchScratch("snapshots");
const { children, dir } = scratch;
const redisPort = await startOwnRedis(scratch);
const port = await freePort();
const service = spawn(process.execPath, ["--heapsnapshot-signal=SIGUSR1", join(process.cwd(), "dist/src/main.js")], {
  // The snapshots are written to the service's working directory.
  cwd: dir,
  env: { ...process.env, PORT: String(port), HOST: "127.0.0.1", REDIS_URL: `redis://127.0.0.1:${redisPort}`, WORKERS: "1", ADMIN_TOKEN: "heap-token", LOG_LEVEL: "warn", RATE_LIMIT_PER_MINUTE: "0", MAX_STREAMS: String(4 * WATCHERS) },
  stdio: ["ignore", "inherit", "inherit"],
});
children.push(service);
await waitListening(port);

const client = createClient(TicketQueueService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
await client.createEvent({ eventId: "h", capacity: 1 }, { headers: { "x-token": "heap-token" } });
const users: { userId: string; ticket: string }[] = [];
for (let i = 0; i < 2 * WATCHERS; i += 200) {
  const batch = Array.from({ length: Math.min(200, 2 * WATCHERS - i) }, (_, j) => client.reserve({ eventId: "h", userId: `u${i + j}` }));
  users.push(...(await Promise.all(batch)));
}

const sockets: Socket[] = [];
/** Opens a watch per user, each on its own connection, framed by hand; resolves when all have their first message. */
function watch(batch: typeof users): Promise<void> {
  return new Promise((resolve) => {
    let opened = 0;
    for (const { userId, ticket } of batch) {
      const socket = connect(port, "127.0.0.1", () => {
        if (SSE) {
          socket.write(`GET /v1/events/h/watch?user_id=${userId}&ticket=${ticket} HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n`);
          return;
        }
        const message = toBinary(WatchStatusRequestSchema, create(WatchStatusRequestSchema, { eventId: "h", userId, ticket }));
        const frame = Buffer.alloc(5 + message.length);
        frame.writeUInt32BE(message.length, 1);
        frame.set(message, 5);
        socket.write(`POST /ticketqueue.v1.TicketQueueService/WatchStatus HTTP/1.1\r\nHost: bench\r\nContent-Type: application/grpc-web+proto\r\nContent-Length: ${frame.length}\r\n\r\n`);
        socket.write(frame);
      });
      socket.once("data", () => {
        if (++opened === batch.length) resolve();
      });
      sockets.push(socket);
    }
  });
}

/** Takes a snapshot; resolves with its file once written (node writes it on the main thread: the next answer comes after). */
async function snapshot(): Promise<string> {
  const before = new Set(readdirSync(dir));
  await new Promise((r) => setTimeout(r, 1000));
  service.kill("SIGUSR1");
  for (;;) {
    const file = readdirSync(dir).find((f) => f.endsWith(".heapsnapshot") && !before.has(f));
    if (file) {
      await client.getEvent({ eventId: "h" }, { headers: { "x-token": "heap-token" } });
      return join(dir, file);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

await watch(users.slice(0, WATCHERS));
const first = await snapshot();
await watch(users.slice(WATCHERS));
const second = await snapshot();
sockets.forEach((s) => s.destroy());

interface HeapSnapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]]; edge_fields: string[]; edge_types: [string[], ...unknown[]] } };
  nodes: number[];
  edges: number[];
  strings: string[];
}

const a = JSON.parse(readFileSync(first, "utf8")) as HeapSnapshot;
const before = new Set<number>();
const idAt = a.snapshot.meta.node_fields.indexOf("id");
for (let i = 0; i < a.nodes.length; i += a.snapshot.meta.node_fields.length) before.add(a.nodes[i + idAt] ?? 0);
const b = JSON.parse(readFileSync(second, "utf8")) as HeapSnapshot;
const { meta } = b.snapshot;
const nf = meta.node_fields.length;
const ef = meta.edge_fields.length;
const field = (name: string): number => meta.node_fields.indexOf(name);
const [TYPE, NAME, ID, SIZE, EDGES] = [field("type"), field("name"), field("id"), field("self_size"), field("edge_count")];
const [E_TYPE, E_NAME, E_TO] = ["type", "name_or_index", "to_node"].map((f) => meta.edge_fields.indexOf(f)) as [number, number, number];
const at = (list: number[], i: number): number => list[i] ?? 0;
const kind = (node: number): string => {
  const type = meta.node_types[0][at(b.nodes, node + TYPE)] ?? "?";
  const name = b.strings[at(b.nodes, node + NAME)] ?? "";
  if (type === "object") return name.slice(0, 40);
  if (type === "closure") return `function ${name.slice(0, 30)}`.trim();
  return `(${type})`;
};
// The first holder of each node (weak references and shortcuts aside), as "Holder.field".
const heldBy = new Map<number, string>();
for (let node = 0, edge = 0; node < b.nodes.length; node += nf) {
  for (let k = at(b.nodes, node + EDGES); k > 0; k--, edge += ef) {
    const type = meta.edge_types[0][at(b.edges, edge + E_TYPE)];
    const to = at(b.edges, edge + E_TO);
    if (type === "weak" || type === "shortcut" || heldBy.has(to)) continue;
    const name = type === "element" || type === "hidden" ? "[]" : String(b.strings[at(b.edges, edge + E_NAME)] ?? "");
    heldBy.set(to, `${kind(node)}.${name}`);
  }
}
const groups = new Map<string, { count: number; bytes: number }>();
let total = 0;
for (let node = 0; node < b.nodes.length; node += nf) {
  if (before.has(at(b.nodes, node + ID))) continue;
  const key = `${kind(node)}  held by  ${heldBy.get(node) ?? "?"}`;
  const group = groups.get(key) ?? { count: 0, bytes: 0 };
  group.count++;
  group.bytes += at(b.nodes, node + SIZE);
  groups.set(key, group);
  total += at(b.nodes, node + SIZE);
}
console.log(`${WATCHERS} more ${SSE ? "SSE" : "gRPC-web"} watchers over HTTP/1.1 (after ${WATCHERS} already open): ${Math.round(total / WATCHERS)} bytes of new objects per watcher`);
console.log(`\n| bytes per watcher | objects per watcher | what, held by |\n|---|---|---|`);
for (const [key, { count, bytes }] of [...groups].sort((x, y) => y[1].bytes - x[1].bytes).slice(0, TOP)) {
  console.log(`| ${Math.round(bytes / WATCHERS)} | ${(count / WATCHERS).toFixed(2)} | ${key} |`);
}
process.exit(0);
