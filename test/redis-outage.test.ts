import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TicketQueueService } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { startTestRedis, type TestRedis } from "./helpers/redis-server.js";
import { startTestService, type TestService } from "./helpers/service.js";

// The service under test waits at most this long for one Redis command.
const COMMAND_TIMEOUT_MS = 500;
// "Fast": every failing call must answer within this, far under 2 s.
const FAST_MS = 1500;

let redis: TestRedis;
let svc: TestService;
let client: ReturnType<typeof createClient<typeof TicketQueueService>>;

beforeAll(async () => {
  redis = await startTestRedis();
  svc = await startTestService(redis.url, { commandTimeoutMs: COMMAND_TIMEOUT_MS });
  client = createClient(TicketQueueService, createGrpcTransport({ baseUrl: svc.baseUrl }));
});
afterAll(async () => {
  await svc.close();
  await redis.dispose();
});

async function timed<T>(call: () => Promise<T>): Promise<{ ms: number; error?: ConnectError }> {
  const started = performance.now();
  try {
    await call();
    return { ms: performance.now() - started };
  } catch (err: unknown) {
    return { ms: performance.now() - started, error: ConnectError.from(err) };
  }
}

async function expectAllUnavailableFast(): Promise<void> {
  const calls: (() => Promise<unknown>)[] = [
    () => client.reserve({ userId: "during-outage" }),
    () => client.getStatus({ userId: "before" }),
    () => client.processQueue({}, { headers: { "x-token": "test-admin-token" } }),
    () => client.health({}),
  ];
  const results = await Promise.all(calls.map((call) => timed(call)));
  for (const r of results) {
    expect(r.error?.code).toBe(Code.Unavailable);
    expect(r.ms).toBeLessThan(FAST_MS);
  }
  const res = await fetch(`${svc.baseUrl}/health`);
  expect(res.status).toBe(503);
  expect(await res.json()).toMatchObject({ code: "unavailable" });
  const reserve = await fetch(`${svc.baseUrl}/reserve`, { method: "POST", body: "{}" });
  expect(reserve.status).toBe(503);
}

async function waitForRecovery(): Promise<number> {
  const started = performance.now();
  for (;;) {
    const r = await timed(() => client.health({}));
    if (!r.error) return performance.now() - started;
    if (performance.now() - started > 10_000) throw new Error("service did not recover within 10 s");
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe("Redis outages", () => {
  it("stopped Redis: Unavailable fast (503 on REST), then recovery by itself", async () => {
    expect((await client.reserve({ userId: "before" })).userId).toBe("before");
    await redis.stop();
    await expectAllUnavailableFast();
    await redis.start();
    await waitForRecovery();
    // The new server is empty (no persistence in this test); the service works again.
    expect((await client.reserve({ userId: "after-restart" })).status).toBeGreaterThan(0);
  });

  it("hung Redis (SIGSTOP): Unavailable within the command timeout, then recovery on SIGCONT", async () => {
    await client.reserve({ userId: "before" });
    redis.pause();
    try {
      await expectAllUnavailableFast();
    } finally {
      redis.resume();
    }
    await waitForRecovery();
    expect((await client.getStatus({ userId: "before" })).status).toBe(1);
  });
});
