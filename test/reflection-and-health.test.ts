import * as http2 from "node:http2";
import { credentials, loadPackageDefinition, Metadata, type ServiceClientConstructor, type ServiceError } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { GrpcReflection } from "grpc-js-reflection-client";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { ON_CLUSTER, startTestService, useTestService } from "./helpers/service.js";
import { until } from "./helpers/wait.js";

const env = useTestService({ capacity: 1, commandTimeoutMs: 500 });

type Callback = (err: ServiceError | null, res: Record<string, unknown>) => void;
type Dynamic = Record<string, (req: object, md: Metadata, cb: Callback) => void> & { close(): void };
const unary = (client: Dynamic, method: string, req: object): Promise<Record<string, unknown>> =>
  new Promise((resolve, reject) => {
    const fn = client[method];
    if (!fn) throw new Error(`no method ${method}`);
    fn.call(client, req, new Metadata(), (err, res) => (err ? reject(err) : resolve(res)));
  });

describe.each(["v1", "v1alpha"])("server reflection %s (grpc-js-reflection-client)", (version) => {
  it("lists the services and describes them well enough to call them with no .proto file", async () => {
    const reflection = new GrpcReflection(env.svc.address, credentials.createInsecure(), {}, version);
    const services = await reflection.listServices();
    expect(services).toEqual(expect.arrayContaining(["ticketqueue.v1.TicketQueueService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"]));
    const descriptor = await reflection.getDescriptorBySymbol("ticketqueue.v1.TicketQueueService");
    const pkg = descriptor.getPackageObject({ keepCase: true, enums: String, defaults: true }) as unknown as {
      ticketqueue: { v1: { TicketQueueService: ServiceClientConstructor } };
    };
    const client = new pkg.ticketqueue.v1.TicketQueueService(env.svc.address, credentials.createInsecure()) as unknown as Dynamic;
    try {
      expect(await unary(client, "Reserve", { user_id: `reflected-${version}` })).toMatchObject({ user_id: `reflected-${version}` });
    } finally {
      client.close();
    }
    await expect(reflection.getDescriptorBySymbol("no.such.Symbol")).rejects.toBeDefined();
    const byFile = await reflection.getDescriptorByFileName("ticketqueue/v1/ticket_queue.proto");
    expect(byFile.getProtobufJsRoot().lookup("ticketqueue.v1.ReserveRequest")).toBeTruthy();
  });
});

describe("grpc.health.v1.Health (a grpc-js client from grpc-health-check's health.proto)", () => {
  const definition = loadSync("health/v1/health.proto", { includeDirs: ["node_modules/grpc-health-check/proto"], enums: String });
  const { grpc } = loadPackageDefinition(definition) as unknown as { grpc: { health: { v1: { Health: ServiceClientConstructor } } } };

  it("Check says SERVING for the server and its service, NOT_FOUND for others", async () => {
    const client = new grpc.health.v1.Health(env.svc.address, credentials.createInsecure()) as unknown as Dynamic;
    try {
      expect(await unary(client, "Check", { service: "" })).toEqual({ status: "SERVING" });
      expect(await unary(client, "Check", { service: "ticketqueue.v1.TicketQueueService" })).toEqual({ status: "SERVING" });
      await expect(unary(client, "Check", { service: "nope" })).rejects.toMatchObject({ code: 5 });
    } finally {
      client.close();
    }
  });

  it.skipIf(ON_CLUSTER)("Watch follows Redis: SERVING, NOT_SERVING while it is down, SERVING again", async () => {
    const client = new grpc.health.v1.Health(env.svc.address, credentials.createInsecure()) as unknown as {
      Watch(req: object): NodeJS.EventEmitter & { cancel(): void };
      close(): void;
    };
    const seen: string[] = [];
    const call = client.Watch({ service: "" });
    call.on("data", (m: { status: string }) => seen.push(m.status));
    call.on("error", () => undefined);
    const waitFor = async (status: string): Promise<void> => {
      for (let i = 0; i < 100 && seen.at(-1) !== status; i++) await new Promise((r) => setTimeout(r, 100));
      expect(seen.at(-1)).toBe(status);
    };
    try {
      await waitFor("SERVING");
      await env.redis.stop();
      await waitFor("NOT_SERVING");
      await env.redis.start();
      await waitFor("SERVING");
      expect(seen).toEqual(["SERVING", "NOT_SERVING", "SERVING"]);
    } finally {
      call.cancel();
      client.close();
    }
  });
});

describe("a client that leaves a reflection stream open and goes", () => {
  it("is a cancelled call, not an error in the log (buf curl and grpcurl leave theirs so)", async () => {
    const lines: { level: number; msg: string }[] = [];
    const log = pino({ level: "debug" }, { write: (line: string) => void lines.push(JSON.parse(line) as { level: number; msg: string }) });
    const svc = await startTestService(env.redis.url, { log });
    try {
      const session = http2.connect(svc.baseUrl);
      const stream = session.request({ ":path": "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", ":method": "POST", "content-type": "application/grpc", te: "trailers" });
      stream.on("error", () => undefined);
      // One request (list_services), the request side left open, the answer read: then the client goes.
      const message = Buffer.from([0x3a, 0x00]);
      const frame = Buffer.alloc(5 + message.length);
      frame.writeUInt32BE(message.length, 1);
      frame.set(message, 5);
      stream.write(frame);
      await new Promise((r) => stream.once("data", r));
      session.destroy();
      expect(await until(() => svc.server.openStreams() === 0)).toBe(true);
      await new Promise((r) => setTimeout(r, 100));
      expect(lines.filter((line) => line.level >= 50)).toEqual([]);
    } finally {
      await svc.close();
    }
  });
});
