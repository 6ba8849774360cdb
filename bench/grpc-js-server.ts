// The reference a Node user would pick instead of Connect: a plain @grpc/grpc-js
// server running the same handlers (src/rpc/ticket-queue-service.ts) on the
// same Redis, with the same WORKERS. Admin auth is left out (it is an
// interceptor of ours); errors are mapped by the same toConnectError.
import cluster from "node:cluster";
import * as grpc from "@grpc/grpc-js";
import { createHandlerContext } from "@connectrpc/connect";
import { create, type DescMethod } from "@bufbuild/protobuf";
import { pino } from "pino";
import { TicketQueueService } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { grpcJsServiceDefinition } from "../clients/grpc-js-client.js";
import { loadConfig } from "../src/config.js";
import { buildState } from "../src/app.js";
import { toConnectError } from "../src/rpc/errors.js";
import { ticketQueueService } from "../src/rpc/ticket-queue-service.js";

const config = loadConfig();
const log = pino({ level: "warn" });

if (cluster.isPrimary && config.workers > 1) {
  for (let i = 0; i < config.workers; i++) cluster.fork();
  process.on("SIGTERM", () => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill("SIGTERM");
    process.exit(0);
  });
} else {
  // The service's own state builder: the same Redis client, store, tickets, watch hub and hold sweeper.
  const { store, tickets, challenges, hub } = await buildState({ config, redisUrl: config.redisUrl ?? "redis://127.0.0.1:6379", log });
  const impl = ticketQueueService(store, tickets, challenges, hub, { maxWatchesPerUser: config.maxWatchesPerUser }) as unknown as Record<string, (req: unknown, ctx: unknown) => Promise<Record<string, unknown>>>;

  const handlers: grpc.UntypedServiceImplementation = {};
  for (const method of TicketQueueService.methods) {
    if (method.methodKind !== "unary") continue;
    handlers[method.localName] = (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      const handler = impl[method.localName];
      if (!handler) return callback({ code: grpc.status.UNIMPLEMENTED, details: method.name });
      handler(call.request, context(method)).then(
        (response) => callback(null, create(method.output, response)),
        (err: unknown) => {
          const e = toConnectError(err);
          callback({ code: e.code as number, details: e.rawMessage });
        },
      );
    };
  }
  const server = new grpc.Server();
  server.addService(grpcJsServiceDefinition(TicketQueueService), handlers);
  server.bindAsync(`${config.host}:${config.port}`, grpc.ServerCredentials.createInsecure(), (err) => {
    if (err) throw err;
    console.log(JSON.stringify({ msg: "grpc-js reference listening", port: config.port, pid: process.pid }));
  });
  process.on("SIGTERM", () => server.tryShutdown(() => process.exit(0)));
}

function context(method: DescMethod) {
  return createHandlerContext({ service: TicketQueueService, method, protocolName: "grpc", requestMethod: "POST", url: "" });
}
