import * as http2 from "node:http2";
import { credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Redis } from "ioredis";
import { describe, expect, it } from "vitest";
import { BadRequestSchema } from "../gen/google/rpc/error_details_pb.js";
import { CancelRequestSchema, ReserveRequestSchema, TicketQueueService } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { encodeGrpcMessage } from "../src/server/lean-grpc.js";
import { grpcFrame } from "../bench/scenarios.js";
import { createGrpcJsClient } from "../clients/grpc-js-client.js";
import { ON_CLUSTER, useTestService } from "./helpers/service.js";

// The unary gRPC fast path (src/server/lean-grpc.ts) must speak gRPC as fully as connect-node does.

const env = useTestService({ commandTimeoutMs: 5000 }, ["--enable-debug-command", "local"]);

interface RawAnswer {
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders | undefined;
  data: Buffer;
}

/** A hand-made gRPC call over node:http2, to see frames as they are. */
function raw(path: string, body: Buffer, headers: Record<string, string> = {}): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(env.svc.baseUrl);
    const stream = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers", ...headers });
    let answer: RawAnswer = { headers: {}, trailers: undefined, data: Buffer.alloc(0) };
    stream.on("response", (h) => (answer = { ...answer, headers: h }));
    stream.on("trailers", (t) => (answer = { ...answer, trailers: t }));
    stream.on("data", (d: Buffer) => (answer = { ...answer, data: Buffer.concat([answer.data, d]) }));
    stream.on("close", () => {
      session.close();
      resolve(answer);
    });
    stream.on("error", reject);
    stream.end(body);
  });
}

const RESERVE = "/ticketqueue.v1.TicketQueueService/Reserve";

describe("grpc-message", () => {
  it("is percent-encoded as the gRPC spec says: grpc-js reads colons and spaces back as sent", async () => {
    const grpcJs = createGrpcJsClient(TicketQueueService, env.svc.address);
    try {
      const noTicket = (await grpcJs.cancel({ userId: "kim" }).catch((e: unknown) => e)) as ServiceError;
      expect(noTicket.details).toBe("a ticket is required: send the one Reserve returned");
      const badId = (await grpcJs.getStatus({ userId: "김\u0001" }).catch((e: unknown) => e)) as ServiceError;
      expect(badId.details).toBe("user_id contains a control character");
      const answer = await raw("/ticketqueue.v1.TicketQueueService/Cancel", grpcFrame(CancelRequestSchema, { userId: "kim" }));
      expect(answer.headers["grpc-message"]).toBe("a ticket is required: send the one Reserve returned");
      // Only bytes outside 0x20-0x7E and "%" are encoded; UTF-8 goes byte by byte.
      expect(encodeGrpcMessage("자리 50%: ok")).toBe("%EC%9E%90%EB%A6%AC 50%25: ok");
    } finally {
      grpcJs.close();
    }
  });
});

describe("unary gRPC fast path", () => {
  it("answers with headers, one message and grpc-status 0 in the trailers", async () => {
    const a = await raw(RESERVE, grpcFrame(ReserveRequestSchema, { userId: "raw-ok" }));
    expect(a.headers[":status"]).toBe(200);
    expect(a.headers["content-type"]).toBe("application/grpc");
    expect(a.data.readUInt32BE(1)).toBe(a.data.length - 5);
    expect(a.trailers?.["grpc-status"]).toBe("0");
  });

  it("sends errors trailers-only: the status in the one HEADERS frame, no message", async () => {
    const a = await raw(RESERVE, grpcFrame(ReserveRequestSchema, { userId: "bad\nid" }));
    expect(a.headers[":status"]).toBe(200);
    expect(a.headers["grpc-status"]).toBe("3");
    expect(decodeURIComponent(String(a.headers["grpc-message"]))).toContain("control character");
    expect(a.data.length).toBe(0);
    expect(a.trailers).toBeUndefined();
  });

  it("carries error details: google.rpc.BadRequest names the field, on gRPC (grpc-status-details-bin), Connect and REST", async () => {
    const a = await raw(RESERVE, grpcFrame(ReserveRequestSchema, { userId: "bad\u0007id" }));
    expect(String(a.headers["grpc-status-details-bin"] ?? "").length).toBeGreaterThan(0);

    const client = createClient(TicketQueueService, createGrpcTransport({ baseUrl: env.svc.baseUrl }));
    const err = await client.reserve({ userId: "x".repeat(200) }).catch((e: unknown) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    const details = err instanceof ConnectError ? err.findDetails(BadRequestSchema) : [];
    expect(details[0]?.fieldViolations[0]).toMatchObject({ field: "user_id", description: "is longer than 128 bytes" });

    const grpcJs = createGrpcJsClient(TicketQueueService, env.svc.address);
    const jsErr = (await grpcJs.reserve({ userId: "x".repeat(200) }).catch((e: ServiceError) => e)) as ServiceError;
    expect(jsErr.code).toBe(3);
    expect(jsErr.metadata.get("grpc-status-details-bin")[0]).toBeInstanceOf(Buffer);
    grpcJs.close();

    const rest = await fetch(`${env.svc.baseUrl}/reserve`, { method: "POST", body: JSON.stringify({ user_id: "x".repeat(200) }) });
    expect(((await rest.json()) as { details: { type: string }[] }).details[0]?.type).toBe("google.rpc.BadRequest");
  });

  it("answers the caller's x-request-id in the headers, and in the only HEADERS frame of an error", async () => {
    const ok = await raw(RESERVE, grpcFrame(ReserveRequestSchema, { userId: "raw-rid" }), { "x-request-id": "rid-ok-1" });
    expect(ok.headers["x-request-id"]).toBe("rid-ok-1");
    expect(ok.trailers?.["grpc-status"]).toBe("0");
    const bad = await raw(RESERVE, grpcFrame(ReserveRequestSchema, { userId: "bad\nid" }), { "x-request-id": "rid-bad-1" });
    expect(bad.headers["grpc-status"]).toBe("3");
    expect(bad.headers["x-request-id"]).toBe("rid-bad-1");
    const admin = await raw("/ticketqueue.v1.TicketQueueService/ProcessQueue", Buffer.alloc(5));
    expect(admin.headers["grpc-status"]).toBe("16");
    expect(String(admin.headers["x-request-id"] ?? "")).toMatch(/^[\w-]{36}$/);
  });

  it("refuses an oversized message by its declared length too, before reading it", async () => {
    const big = grpcFrame(ReserveRequestSchema, { userId: "x".repeat(70_000) });
    const a = await raw(RESERVE, big, { "content-length": String(big.length) });
    expect(a.headers["grpc-status"]).toBe("8");
    expect(decodeURIComponent(String(a.headers["grpc-message"]))).toContain("larger than 65536 bytes");
  });

  it("refuses a malformed frame, a compressed flag without grpc-encoding, and an oversized message", async () => {
    expect((await raw(RESERVE, Buffer.from([0, 0, 0]))).headers["grpc-status"]).toBe("3");
    const flagged = grpcFrame(ReserveRequestSchema, { userId: "x" });
    flagged[0] = 1;
    expect((await raw(RESERVE, flagged)).headers["grpc-status"]).toBe("13");
    expect((await raw(RESERVE, grpcFrame(ReserveRequestSchema, { userId: "x".repeat(70_000) }))).headers["grpc-status"]).toBe("8");
    expect((await raw(RESERVE, Buffer.from([0, 0, 0, 0, 2, 0xff, 0xff]))).headers["grpc-status"]).toBe("3");
  });

  it.skipIf(ON_CLUSTER)("honours grpc-timeout: DEADLINE_EXCEEDED while Redis is busy", async () => {
    const admin = new Redis(env.redis.url);
    try {
      const sleeping = admin.call("DEBUG", "SLEEP", "0.8");
      await new Promise((r) => setTimeout(r, 30));
      const started = performance.now();
      const a = await raw(RESERVE, grpcFrame(ReserveRequestSchema, { userId: "late" }), { "grpc-timeout": "200m" });
      expect(a.headers["grpc-status"]).toBe("4");
      expect(performance.now() - started).toBeLessThan(600);

      const client = createClient(TicketQueueService, createGrpcTransport({ baseUrl: env.svc.baseUrl }));
      const sleeping2 = (await sleeping, admin.call("DEBUG", "SLEEP", "0.8"));
      await new Promise((r) => setTimeout(r, 30));
      await expect(client.reserve({ userId: "late-2" }, { timeoutMs: 200 })).rejects.toSatisfy((e) => ConnectError.from(e).code === Code.DeadlineExceeded);
      await sleeping2;
      const grpcJs = createGrpcJsClient(TicketQueueService, env.svc.address);
      const sleeping3 = admin.call("DEBUG", "SLEEP", "0.8");
      await new Promise((r) => setTimeout(r, 30));
      await expect(grpcJs.reserve({ userId: "late-3" }, { deadline: new Date(Date.now() + 200) })).rejects.toMatchObject({ code: 4 });
      grpcJs.close();
      await sleeping3;
    } finally {
      admin.disconnect();
    }
    expect((await raw(RESERVE, grpcFrame(ReserveRequestSchema, {}), { "grpc-timeout": "bogus" })).headers["grpc-status"]).toBe("3");
  });

  it("hands compressed requests and other encodings to Connect, which serves them", async () => {
    const gzip = createGrpcJsClient(TicketQueueService, env.svc.address, credentials.createInsecure(), { "grpc.default_compression_algorithm": 2 });
    try {
      const md = new Metadata();
      expect(await gzip.reserve({ userId: "gzip-user" }, { metadata: md })).toMatchObject({ userId: "gzip-user" });
    } finally {
      gzip.close();
    }
    const payload = Buffer.from('{"userId":"json-user"}');
    const header = Buffer.alloc(5);
    header.writeUInt32BE(payload.length, 1);
    const json = await raw(RESERVE, Buffer.concat([header, payload]), { "content-type": "application/grpc+json" });
    expect(JSON.parse(json.data.subarray(5).toString())).toMatchObject({ userId: "json-user" });
    expect(json.trailers?.["grpc-status"] ?? json.headers["grpc-status"]).toBe("0");
  });

  it.skipIf(ON_CLUSTER)("survives clients that cancel mid-call", async () => {
    const client = createGrpcJsClient(TicketQueueService, env.svc.address);
    const admin = new Redis(env.redis.url);
    try {
      const sleeping = admin.call("DEBUG", "SLEEP", "0.3");
      await new Promise((r) => setTimeout(r, 20));
      const calls = Array.from({ length: 20 }, (_, i) => client.reserve({ userId: `cancel-${i}` }, { deadline: new Date(Date.now() + 50) }).catch((e: ServiceError) => e.code));
      expect(await Promise.all(calls)).toEqual(Array.from({ length: 20 }, () => 4));
      await sleeping;
      expect(await client.health({})).toMatchObject({ status: "ok" });
    } finally {
      client.close();
      admin.disconnect();
    }
  });
});
