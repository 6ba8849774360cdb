// The honest peer: Reserve as a Node user would write it without this project.
// @grpc/grpc-js with @grpc/proto-loader reading the same proto, ioredis, one Lua
// call per Reserve (seat if one is free, else join the queue, a repeat changes
// nothing), a UUID for a new user. No tickets, no interceptors, no metrics, no
// events beyond "default", no validation beyond what the proto gives. The same
// keys as the service's default event, so the bench counts its users the same
// way; the same WORKERS (node:cluster, as the service does).
import cluster from "node:cluster";
import { randomUUID } from "node:crypto";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { getProtoPath } from "google-proto-files";
import { Redis } from "ioredis";
import { eventKeys } from "../src/queue/keys.js";

const port = Number(process.env["PORT"] ?? 50051);
const host = process.env["HOST"] ?? "127.0.0.1";
const workers = Number(process.env["WORKERS"] ?? availableParallelism());
const capacity = Number(process.env["CAPACITY"] ?? 500);
const prefix = process.env["KEY_PREFIX"] ?? "plain";

const RESERVE = `
local seat = redis.call('HGET', KEYS[1], ARGV[1])
if seat then return {1, 0, 1} end
local rank = redis.call('ZRANK', KEYS[2], ARGV[1])
if rank then return {2, rank + 1, 1} end
if redis.call('HLEN', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  return {1, 0, 0}
end
local seq = redis.call('INCR', KEYS[3])
redis.call('ZADD', KEYS[2], seq, ARGV[1])
return {2, redis.call('ZCARD', KEYS[2]), 0}
`;

interface ReserveRequest {
  user_id: string;
  event_id: string;
}

if (cluster.isPrimary && workers > 1) {
  for (let i = 0; i < workers; i++) cluster.fork();
  process.on("SIGTERM", () => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill("SIGTERM");
    process.exit(0);
  });
} else {
  const protoDir = fileURLToPath(new URL("../../proto", import.meta.url));
  const definition = protoLoader.loadSync("ticketqueue/v1/ticket_queue.proto", {
    includeDirs: [protoDir, getProtoPath("..")],
    keepCase: true,
    longs: String,
    enums: Number,
    defaults: true,
  });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as { ticketqueue: { v1: { TicketQueueService: grpc.ServiceClientConstructor } } };
  const redis = new Redis(process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379");
  redis.defineCommand("reserve", { numberOfKeys: 3, lua: RESERVE });
  const [, seatsKey = "", waitingKey = ""] = eventKeys(prefix, "default");
  const reserve = (userId: string) =>
    (redis as unknown as { reserve: (...args: string[]) => Promise<[number, number, number]> }).reserve(seatsKey, waitingKey, `${waitingKey}:seq`, userId, String(capacity), String(Date.now()));

  const server = new grpc.Server();
  server.addService(pkg.ticketqueue.v1.TicketQueueService.service, {
    reserve: (call: grpc.ServerUnaryCall<ReserveRequest, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      const userId = call.request.user_id || randomUUID();
      reserve(userId).then(
        ([status, position, existed]) =>
          callback(null, {
            user_id: userId,
            event_id: "default",
            status,
            position,
            already_reserved: existed === 1 && status === 1,
            already_in_queue: existed === 1 && status === 2,
            party_size: 1,
          }),
        (err: Error) => callback({ code: grpc.status.UNAVAILABLE, details: err.message }),
      );
    },
  });
  server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (err) => {
    if (err) throw err;
    console.log(JSON.stringify({ msg: "plain grpc-js server listening", port, pid: process.pid }));
  });
  process.on("SIGTERM", () => server.tryShutdown(() => process.exit(0)));
}
