import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RetryInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import { TicketQueueService } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { createGrpcJsClient } from "../clients/grpc-js-client.js";
import { startTestRedis, type TestRedis } from "./helpers/redis-server.js";
import { startTestService, type TestService } from "./helpers/service.js";

let redis: TestRedis;
beforeAll(async () => {
  redis = await startTestRedis();
});
afterAll(async () => {
  await redis.dispose();
});

const reserveRest = (svc: TestService, headers: Record<string, string> = {}) =>
  fetch(`${svc.baseUrl}/reserve`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: "{}" });

describe("per-caller rate limit on Reserve and Cancel", () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startTestService(redis.url, { rateLimit: { perMinute: 3, trustedProxies: new Set(), serviceTokens: new Map([["booking", "s3cret"]]) } });
  });
  afterAll(async () => svc.close());

  it("refuses the 4th Reserve a minute from one IP with 429 / RESOURCE_EXHAUSTED and says when to retry", async () => {
    for (let i = 0; i < 3; i++) expect((await reserveRest(svc)).status).toBe(200);
    const refused = await reserveRest(svc, { "x-forwarded-for": "198.51.100.7" }); // not a trusted proxy: ignored
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(await refused.json()).toMatchObject({ code: "resource_exhausted" });

    const client = createClient(TicketQueueService, createGrpcTransport({ baseUrl: svc.baseUrl }));
    const err = ConnectError.from(await client.reserve({}).catch((e: unknown) => e));
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(Number(err.metadata.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(Number(err.findDetails(RetryInfoSchema)[0]?.retryDelay?.seconds)).toBeGreaterThanOrEqual(1);
    const grpcJs = createGrpcJsClient(TicketQueueService, svc.address);
    await expect(grpcJs.reserve({})).rejects.toMatchObject({ code: 8 });
    grpcJs.close();
    // Reads are not limited.
    expect((await client.getStatus({ userId: "anyone" })).userId).toBe("anyone");
  });

  it("keys a calling service by its credential, not its IP", async () => {
    for (let i = 0; i < 3; i++) expect((await reserveRest(svc, { "x-service-token": "s3cret" })).status).toBe(200);
    expect((await reserveRest(svc, { "x-service-token": "s3cret" })).status).toBe(429);
    expect((await reserveRest(svc, { "x-service-token": "wrong" })).status).toBe(429); // falls back to the (exhausted) IP
  });
});

describe("one address, every transport", () => {
  it("Connect binary, gRPC, gRPC-web, Connect JSON and REST from one address share one bucket", async () => {
    const svc = await startTestService(redis.url, { rateLimit: { perMinute: 5, trustedProxies: new Set(), serviceTokens: new Map() } });
    try {
      const clients = [
        createConnectTransport({ baseUrl: svc.baseUrl, httpVersion: "1.1", useBinaryFormat: true }),
        createGrpcTransport({ baseUrl: svc.baseUrl }),
        createGrpcWebTransport({ baseUrl: svc.baseUrl, httpVersion: "1.1" }),
        createConnectTransport({ baseUrl: svc.baseUrl, httpVersion: "1.1" }),
      ].map((t) => createClient(TicketQueueService, t));
      const codeOf = (p: Promise<unknown>): Promise<Code | "ok"> => p.then(() => "ok" as const, (e: unknown) => ConnectError.from(e).code);
      const rest = async (): Promise<Code | "ok"> => ((await reserveRest(svc)).status === 429 ? Code.ResourceExhausted : "ok");
      // Five calls, one on each transport, empty the bucket of 5; the next on any transport is refused.
      expect([...(await Promise.all(clients.map((c) => codeOf(c.reserve({}))))), await rest()]).toEqual(["ok", "ok", "ok", "ok", "ok"]);
      expect([...(await Promise.all(clients.map((c) => codeOf(c.reserve({}))))), await rest()]).toEqual(Array(5).fill(Code.ResourceExhausted));
      // The one bucket is the TCP peer's (EXISTS, not KEYS: on a Redis Cluster KEYS sees one node).
      expect(await svc.redis.exists(`${svc.prefix}:rl:{Reserve:ip:127.0.0.1}`)).toBe(1);
      expect(await svc.redis.exists(`${svc.prefix}:rl:{Reserve:ip:unknown}`)).toBe(0);
    } finally {
      await svc.close();
    }
  });
});

describe("behind a trusted proxy", () => {
  it("limits each forwarded client separately, and only trusts X-Forwarded-For from the proxy", async () => {
    const svc = await startTestService(redis.url, { rateLimit: { perMinute: 2, trustedProxies: new Set(["127.0.0.1", "10.0.0.2"]), serviceTokens: new Map() } });
    try {
      const a = { "x-forwarded-for": "203.0.113.1" };
      const b = { "x-forwarded-for": "203.0.113.2, 10.0.0.2" }; // client, then a second trusted hop
      for (let i = 0; i < 2; i++) expect((await reserveRest(svc, a)).status).toBe(200);
      expect((await reserveRest(svc, a)).status).toBe(429);
      for (let i = 0; i < 2; i++) expect((await reserveRest(svc, b)).status).toBe(200);
      expect((await reserveRest(svc, b)).status).toBe(429);
      // A client cannot pick another identity by prepending addresses: the right-most untrusted hop counts.
      expect((await reserveRest(svc, { "x-forwarded-for": "192.0.2.99, 203.0.113.1" })).status).toBe(429);
    } finally {
      await svc.close();
    }
  });
});
