import { randomUUID } from "node:crypto";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BadRequestSchema } from "../gen/google/rpc/error_details_pb.js";
import { ReservationStatus, TicketQueueService } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { buildState, type State } from "../src/app.js";
import { loadConfig } from "../src/config.js";
import { auditKey, refusedAuditKey } from "../src/queue/keys.js";
import { REQUEST_ID_HEADER } from "../src/rpc/errors.js";
import { createRpcSurface } from "../src/rpc/rpc-surface.js";
import { startTestRedis, type TestRedis } from "./helpers/redis-server.js";

// The RPC surface (handlers and every interceptor) served by Connect's in-memory
// router transport: no port, no HTTP, the same rules. State is a real Redis.

const ADMIN = { headers: { "x-token": "in-memory-admin" } };
let redis: TestRedis;
let state: State;
let prefix: string;
let client: ReturnType<typeof createClient<typeof TicketQueueService>>;

beforeAll(async () => {
  redis = await startTestRedis();
  prefix = `test-${randomUUID()}`;
  const log = pino({ level: "silent" });
  state = await buildState({ config: { ...loadConfig({}), keyPrefix: prefix, capacity: 1 }, redisUrl: redis.url, log, holdSweepMs: 100 });
  const rpc = createRpcSurface({
    store: state.store,
    tickets: state.tickets,
    challenges: state.challenges,
    hub: state.hub,
    adminToken: "in-memory-admin",
    rateLimitPerMinute: 5,
    caller: { trustedProxies: new Set(), serviceTokens: new Map() },
    adminFailuresPerMinute: 30,
    maxStreams: 10,
    maxWatchesPerUser: 1,
    log,
  });
  client = createClient(TicketQueueService, createRouterTransport(rpc.routes, { router: { interceptors: [...rpc.interceptors] } }));
});
afterAll(async () => {
  await state.close();
  await redis.dispose();
});

const refusal = (call: Promise<unknown>): Promise<ConnectError> =>
  call.then(
    () => {
      throw new Error("the call was answered");
    },
    (err: unknown) => ConnectError.from(err),
  );

describe("the RPC surface in memory", () => {
  it("seats the first, queues the next, and signs a ticket for each", async () => {
    const first = await client.reserve({ userId: "mem-1" });
    const second = await client.reserve({ userId: "mem-2" });
    expect([first.status, second.status, second.position]).toEqual([ReservationStatus.RESERVED, ReservationStatus.QUEUED, 1]);
    expect(second.ticket.split(".")).toHaveLength(3);
    expect((await client.getStatus({ userId: "mem-2" })).position).toBe(1);
  });

  it("maps state errors through the one table, with a BadRequest detail for a bad field and the request id", async () => {
    const missing = await refusal(client.getStatus({ eventId: "no-such-train", userId: "mem-1" }));
    expect(missing.code).toBe(Code.NotFound);
    expect(missing.metadata.get(REQUEST_ID_HEADER)).toMatch(/\S/);
    const bad = await refusal(client.getStatus({ userId: "bad\u0001id" }));
    expect(bad.code).toBe(Code.InvalidArgument);
    expect(bad.findDetails(BadRequestSchema)[0]?.fieldViolations[0]?.field).toBe("user_id");
  });

  it("admin RPCs: refused without the token, answered with it, and both audited with the code the caller got", async () => {
    expect((await refusal(client.processQueue({}))).code).toBe(Code.Unauthenticated);
    await client.processQueue({}, ADMIN);
    await expect.poll(async () => (await state.redis.xrange(refusedAuditKey(prefix), "-", "+")).length).toBe(1);
    const [refused] = await state.redis.xrange(refusedAuditKey(prefix), "-", "+");
    expect(refused?.[1]).toEqual(expect.arrayContaining(["rpc", "ProcessQueue", "outcome", String(Code.Unauthenticated)]));
    await expect.poll(async () => (await state.redis.xrange(auditKey(prefix), "-", "+")).at(-1)?.[1]).toEqual(expect.arrayContaining(["rpc", "ProcessQueue", "outcome", "ok"]));
  });

  it("an admin stream is audited at its end: the code the client got, or that the client closed it", async () => {
    const lastAudit = async (): Promise<string[] | undefined> => (await state.redis.xrange(auditKey(prefix), "-", "+")).at(-1)?.[1];
    expect((await refusal(client.watchEvent({ eventId: "no-such-train" }, ADMIN)[Symbol.asyncIterator]().next())).code).toBe(Code.NotFound);
    await expect.poll(lastAudit).toEqual(expect.arrayContaining(["rpc", "WatchEvent", "outcome", String(Code.NotFound)]));
    const abort = new AbortController();
    const feed = client.watchEvent({}, { ...ADMIN, signal: abort.signal })[Symbol.asyncIterator]();
    await feed.next();
    abort.abort();
    await feed.return?.();
    await expect.poll(lastAudit).toEqual(expect.arrayContaining(["rpc", "WatchEvent", "outcome", "closed by the client"]));
  });

  it("WatchStatus needs the user's ticket and is bounded per user", async () => {
    const { ticket } = await client.reserve({ userId: "mem-3" });
    expect((await refusal(client.watchStatus({ userId: "mem-3" })[Symbol.asyncIterator]().next())).code).toBe(Code.Unauthenticated);
    const abort = new AbortController();
    const open = client.watchStatus({ userId: "mem-3", ticket }, { signal: abort.signal })[Symbol.asyncIterator]();
    try {
      expect((await open.next()).value?.position).toBe(2);
      expect((await refusal(client.watchStatus({ userId: "mem-3", ticket })[Symbol.asyncIterator]().next())).code).toBe(Code.ResourceExhausted);
    } finally {
      abort.abort();
      await open.return?.();
    }
  });

  it("throttled RPCs (Reserve) are rate limited per caller: 5 a minute here", async () => {
    const codes: (Code | "ok")[] = [];
    for (let i = 0; i < 8; i++) codes.push(await client.reserve({ userId: "mem-1" }).then(() => "ok" as const, (e: unknown) => ConnectError.from(e).code));
    expect(codes).toContain(Code.ResourceExhausted);
  });
});
