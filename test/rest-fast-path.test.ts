import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TicketQueueService } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { createRestGateway } from "../src/gateway/rest-gateway.js";
import type { RpcSurface } from "../src/rpc/rpc-surface.js";
import { CallContext } from "../src/rpc/unary-calls.js";
import { BodyBudget } from "../src/server/body-budget.js";

// The REST gateway's fast path (unary routes called without Connect's router)
// against the router path, with handlers that set what the queue's own handlers
// do not today: response headers, trailers, error metadata. Both must answer
// alike, and the fast path must really be the one taken.

const contexts: { fast: boolean }[] = [];
const impl = {
  health(_req: unknown, ctx: HandlerContext) {
    contexts.push({ fast: ctx instanceof CallContext });
    ctx.responseHeader.set("x-handler-header", "h");
    ctx.responseTrailer.set("x-handler-trailer", "t");
    return { status: "ok", redisOk: true };
  },
  getStatus(req: { userId: string }, ctx: HandlerContext) {
    contexts.push({ fast: ctx instanceof CallContext });
    throw new ConnectError(`no user ${req.userId}`, Code.NotFound, { "x-error-detail": "d" });
  },
};

function gateway(fast: boolean) {
  const rpc: RpcSurface = {
    services: [TicketQueueService],
    entries: [{ service: TicketQueueService, impl }],
    interceptors: [],
    routes: (router) => void router.service(TicketQueueService, impl),
    openStreams: () => 0,
    refused: () => undefined,
  };
  return createRestGateway(rpc, { maxBodyBytes: 1024, bodyBudget: new BodyBudget(1 << 20), unaryFastPath: fast });
}

const servers: Server[] = [];
const base: Record<"fast" | "router", string> = { fast: "", router: "" };
beforeAll(async () => {
  for (const kind of ["fast", "router"] as const) {
    const handle = gateway(kind === "fast");
    const server = createServer((req, res) => void handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    servers.push(server);
    base[kind] = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }
});
afterAll(async () => {
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
});

async function answer(kind: "fast" | "router", path: string) {
  contexts.length = 0;
  const res = await fetch(`${base[kind]}${path}`);
  return {
    status: res.status,
    body: (await res.json()) as unknown,
    header: res.headers.get("x-handler-header"),
    trailer: res.headers.get("trailer-x-handler-trailer"),
    errorDetail: res.headers.get("x-error-detail"),
    contentType: res.headers.get("content-type"),
    fast: contexts.map((c) => c.fast),
  };
}

describe("REST fast path", () => {
  it("answers a handler's headers and trailers (as trailer- headers) as Connect's router does", async () => {
    const fast = await answer("fast", "/health");
    const router = await answer("router", "/health");
    expect(fast.fast).toEqual([true]);
    expect(router.fast).toEqual([false]);
    expect(fast).toEqual({ ...router, fast: [true] });
    expect(fast).toMatchObject({ status: 200, header: "h", trailer: "t", body: { status: "ok", redis_ok: true, redis_latency_ms: 0 } });
  });

  it("answers a handler's error, its metadata included, as Connect's router does", async () => {
    const fast = await answer("fast", "/status/u-1");
    const router = await answer("router", "/status/u-1");
    expect(fast.fast).toEqual([true]);
    expect(fast).toEqual({ ...router, fast: [true] });
    expect(fast).toMatchObject({ status: 404, errorDetail: "d", body: { code: "not_found", message: "no user u-1" } });
  });
});
