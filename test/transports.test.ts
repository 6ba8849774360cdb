import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TicketQueueService } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { CallFailed, connectGrpc, connectGrpcWeb, connectProtocol, grpcJs, handFramedGrpcWebReserve, rest, type Answers } from "./helpers/clients.js";
import { startTestRedis, type TestRedis } from "./helpers/redis-server.js";
import { startTestService, TEST_ADMIN_TOKEN, type TestService } from "./helpers/service.js";

let redis: TestRedis;
beforeAll(async () => {
  redis = await startTestRedis();
});
afterAll(async () => {
  await redis.dispose();
});

const transports: [string, (svc: TestService) => Answers][] = [
  ["gRPC (connect-node client)", (svc) => connectGrpc(svc.baseUrl)],
  ["gRPC (@grpc/grpc-js client)", (svc) => grpcJs(svc.address)],
  ["gRPC-web over HTTP/1.1", (svc) => connectGrpcWeb(svc.baseUrl, "1.1")],
  ["gRPC-web over HTTP/2", (svc) => connectGrpcWeb(svc.baseUrl, "2")],
  ["Connect JSON over HTTP/1.1", (svc) => connectProtocol(svc.baseUrl, "1.1", false)],
  ["Connect binary over HTTP/2", (svc) => connectProtocol(svc.baseUrl, "2", true)],
  ["REST gateway (fetch)", (svc) => rest(svc.baseUrl)],
];

describe.each(transports)("%s", (_name, makeClient) => {
  let svc: TestService;
  let client: Answers;
  beforeAll(async () => {
    svc = await startTestService(redis.url, { capacity: 2 });
    client = makeClient(svc);
  });
  afterAll(async () => {
    client.close();
    await svc.close();
  });

  it("serves every RPC with the same answers", async () => {
    expect(await client.health()).toMatchObject({ status: "ok", redisOk: true });
    const generated = await client.reserve("");
    expect(generated).toMatchObject({ status: "RESERVED", position: 0, alreadyReserved: false, alreadyInQueue: false });
    expect(String(generated["userId"])).toMatch(/^[0-9a-f-]{36}$/);

    const alice = await client.reserve("alice");
    expect(alice).toMatchObject({ userId: "alice", eventId: "default", status: "RESERVED", position: 0, alreadyReserved: false, alreadyInQueue: false, promoted: false });
    expect(String(alice["ticket"])).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    const bob = await client.reserve("bob");
    expect(bob).toMatchObject({ userId: "bob", status: "QUEUED", position: 1, alreadyReserved: false, alreadyInQueue: false, promoted: false });
    expect(bob["ticket"]).not.toBe("");
    expect(await client.reserve("carol")).toMatchObject({ status: "QUEUED", position: 2 });
    expect(await client.reserve("alice")).toMatchObject({ status: "RESERVED", alreadyReserved: true, alreadyInQueue: false, ticket: "" });
    expect(await client.reserve("bob")).toMatchObject({ status: "QUEUED", position: 1, alreadyReserved: false, alreadyInQueue: true });

    expect(await client.getStatus("carol")).toMatchObject({ userId: "carol", eventId: "default", status: "QUEUED", position: 2, promoted: false });
    expect(await client.getStatus("nobody")).toMatchObject({ userId: "nobody", status: "NOT_FOUND", position: 0 });

    expect(await client.processQueue(TEST_ADMIN_TOKEN)).toEqual({ promotedUserIds: [], promotedCount: 0 });
    await svc.store.reset("default"); // free every seat, then refill: the waiting queue is empty after reset
    for (const u of ["u1", "u2", "u3", "u4"]) await client.reserve(u);
    await svc.redis.hset(`${svc.prefix}:{default}:meta`, "capacity", 3);
    expect(await client.processQueue(TEST_ADMIN_TOKEN)).toEqual({ promotedUserIds: ["u3"], promotedCount: 1 });
    expect(await client.getStatus("u3")).toMatchObject({ status: "RESERVED", position: 0, promoted: true });
    expect(await client.getStatus("u4")).toMatchObject({ status: "QUEUED", position: 1 });

    expect(await client.reset(TEST_ADMIN_TOKEN)).toEqual({ clearedReserved: 3, clearedWaiting: 1 });
    expect(await client.getStatus("u1")).toMatchObject({ status: "NOT_FOUND" });
  });

  it("requires the admin token for ProcessQueue and Reset", async () => {
    for (const call of [(t?: string) => client.processQueue(t), (t?: string) => client.reset(t)]) {
      await expect(call()).rejects.toMatchObject({ code: 16 });
      await expect(call("wrong-token")).rejects.toMatchObject({ code: 16 });
      await expect(call(TEST_ADMIN_TOKEN + "x")).rejects.toMatchObject({ code: 16 });
      await expect(call(TEST_ADMIN_TOKEN)).resolves.toBeDefined();
    }
  });

  it("refuses a bad user id with InvalidArgument", async () => {
    await expect(client.reserve("x".repeat(129))).rejects.toBeInstanceOf(CallFailed);
    await expect(client.reserve("x".repeat(129))).rejects.toMatchObject({ code: 3 });
    await expect(client.reserve("tab\there")).rejects.toMatchObject({ code: 3 });
    await expect(client.getStatus("nul\u0000")).rejects.toMatchObject({ code: 3 });
    // 128 bytes exactly (multi-byte characters count in bytes) is fine.
    expect(await client.reserve("가".repeat(42) + "xy")).toMatchObject({ status: expect.any(String) });
  });
});

describe("gRPC-web framed by hand", () => {
  it("answers a Reserve with a data frame and grpc-status 0 in the trailer frame", async () => {
    const svc = await startTestService(redis.url, { capacity: 1 });
    try {
      const first = await handFramedGrpcWebReserve(svc.baseUrl, "hand-1");
      expect(first.grpcStatus).toBe("0");
      expect(first.message).toMatchObject({ userId: "hand-1", status: 1, position: 0 });
      const second = await handFramedGrpcWebReserve(svc.baseUrl, "hand-2");
      expect(second.message).toMatchObject({ userId: "hand-2", status: 2, position: 1 });
      const bad = await handFramedGrpcWebReserve(svc.baseUrl, "bad\n");
      expect(bad.grpcStatus).toBe("3");
    } finally {
      await svc.close();
    }
  });
});

describe("read-only RPCs (NO_SIDE_EFFECTS)", () => {
  it("are served over Connect GET, cacheable", async () => {
    const svc = await startTestService(redis.url, { capacity: 1 });
    try {
      const client = createClient(TicketQueueService, createConnectTransport({ baseUrl: svc.baseUrl, httpVersion: "1.1", useHttpGet: true }));
      await client.reserve({ userId: "getter" });
      expect(await client.getStatus({ userId: "getter" })).toMatchObject({ userId: "getter", status: 1 });
      const url = `${svc.baseUrl}/ticketqueue.v1.TicketQueueService/GetStatus?connect=v1&encoding=json&message=${encodeURIComponent('{"userId":"getter"}')}`;
      const res = await fetch(url);
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ userId: "getter", status: "RESERVATION_STATUS_RESERVED" });
    } finally {
      await svc.close();
    }
  });
});
