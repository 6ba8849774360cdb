import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Redis } from "ioredis";
import { beforeAll, describe, expect, it } from "vitest";
import { TicketQueueService } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { startTestRedis } from "./helpers/redis-server.js";
import { startTestService, useTestService } from "./helpers/service.js";

// The service under test waits at most this long for one Redis command.
const COMMAND_TIMEOUT_MS = 500;
// "Fast": every failing call must answer within this, far under 2 s.
const FAST_MS = 1500;

let client: ReturnType<typeof createClient<typeof TicketQueueService>>;

const env = useTestService({ commandTimeoutMs: COMMAND_TIMEOUT_MS });
beforeAll(async () => {
  client = createClient(TicketQueueService, createGrpcTransport({ baseUrl: env.svc.baseUrl }));
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
    // Our words and the request id, never the Redis client's ("Stream isn't writeable and enableOfflineQueue ...").
    expect(r.error?.rawMessage).toMatch(/^redis is unavailable \(request id [\w.:-]+\)$/);
  }
  const res = await fetch(`${env.svc.baseUrl}/health`);
  expect(res.status).toBe(503);
  const body = (await res.json()) as { code: string; message: string };
  expect(body).toMatchObject({ code: "unavailable" });
  expect(body.message).toBe(`redis is unavailable (request id ${res.headers.get("x-request-id") ?? ""})`);
  const reserve = await fetch(`${env.svc.baseUrl}/reserve`, { method: "POST", body: "{}" });
  expect(reserve.status).toBe(503);
  // Connect JSON (its lean path): 503 and Connect's error, Redis's words not in it.
  const connectReserve = await fetch(`${env.svc.baseUrl}/ticketqueue.v1.TicketQueueService/Reserve`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
  expect(connectReserve.status).toBe(503);
  expect(((await connectReserve.json()) as { code: string; message: string }).message).toMatch(/^redis is unavailable \(request id [\w.:-]+\)$/);
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
    const before = await client.reserve({ userId: "before" });
    expect(before.userId).toBe("before");
    await env.redis.stop();
    await expectAllUnavailableFast();
    // A live status over SSE is refused as any REST call is: 503 and Connect's error JSON, at once.
    const started = performance.now();
    const watch = await fetch(`${env.svc.baseUrl}/v1/events/default/watch?user_id=before&ticket=${before.ticket}`);
    expect(watch.status).toBe(503);
    expect(((await watch.json()) as { code: string }).code).toBe("unavailable");
    expect(performance.now() - started).toBeLessThan(FAST_MS);
    await env.redis.start();
    await waitForRecovery();
    // The new server is empty (no persistence in this test); the service works again.
    expect((await client.reserve({ userId: "after-restart" })).status).toBeGreaterThan(0);
  });

  it("a process too busy to read Redis's answer before the command timeout passes still takes the answer (no UNAVAILABLE with Redis idle)", async () => {
    await client.reserve({ userId: "busy" });
    // The script goes out, then this process is busy past the timeout: the answer waits in the socket while the timer is due.
    const status = env.svc.store.status("default", "busy");
    await new Promise((resolve) => setImmediate(resolve));
    const busyUntil = Date.now() + COMMAND_TIMEOUT_MS + 300;
    while (Date.now() < busyUntil);
    expect((await status).status).toBe(1);
  });

  it("hung Redis (SIGSTOP): Unavailable within the command timeout, then recovery on SIGCONT", async () => {
    await client.reserve({ userId: "before" });
    env.redis.pause();
    try {
      await expectAllUnavailableFast();
    } finally {
      env.redis.resume();
    }
    await waitForRecovery();
    expect((await client.getStatus({ userId: "before" })).status).toBe(1);
  });
});

describe("a slow Redis (DEBUG SLEEP) under load, with watchers open", () => {
  it("fails calls fast, keeps or ends watch streams cleanly, recovers, and leaks no stream", async () => {
    const slow = await startTestRedis(["--enable-debug-command", "local"]);
    const own = await startTestService(slow.url, { commandTimeoutMs: COMMAND_TIMEOUT_MS, capacity: 1 });
    const ownClient = createClient(TicketQueueService, createGrpcTransport({ baseUrl: own.baseUrl }));
    const admin = new Redis(slow.url);
    try {
      await ownClient.reserve({ userId: "seated" });
      const tickets = await Promise.all(["w1", "w2", "w3"].map(async (userId) => ({ userId, ticket: (await ownClient.reserve({ userId })).ticket })));
      const abort = new AbortController();
      const opened: Promise<void>[] = [];
      const watchers = tickets.map(async ({ userId, ticket }) => {
        let told!: () => void;
        opened.push(new Promise((resolve) => (told = resolve)));
        try {
          for await (const m of ownClient.watchStatus({ userId, ticket }, { signal: abort.signal })) if (m) told();
        } catch {
          // aborted at the end, or ended by the outage: either way it must not linger
        }
      });
      // Open (subscribed and told their state) before Redis sleeps: a watcher is counted before its subscription is answered.
      await Promise.all(opened);
      expect(own.hub.watcherCount()).toBe(3);

      const sleeping = admin.call("DEBUG", "SLEEP", "1.5");
      await new Promise((r) => setTimeout(r, 30));
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => timed(() => ownClient.reserve({ userId: `slow-${i}` }))));
      for (const r of results) {
        expect(r.error?.code).toBe(Code.Unavailable);
        expect(r.ms).toBeLessThan(FAST_MS);
      }
      await sleeping;
      // Recovered: calls succeed again.
      expect((await ownClient.reserve({ userId: "after-slow" })).userId).toBe("after-slow");
      abort.abort();
      await Promise.all(watchers);
      for (let i = 0; i < 50 && own.hub.watcherCount() > 0; i++) await new Promise((r) => setTimeout(r, 20));
      expect(own.hub.watcherCount()).toBe(0);
    } finally {
      admin.disconnect();
      await own.close();
      await slow.dispose();
    }
  });
});

describe("a change subscription Redis does not answer in time", () => {
  it("rejects the watch, leaves no rejection unhandled, and the next watch subscribes afresh", async () => {
    const slow = await startTestRedis(["--enable-debug-command", "local"]);
    const own = await startTestService(slow.url, { commandTimeoutMs: COMMAND_TIMEOUT_MS });
    const admin = new Redis(slow.url);
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
    process.on("unhandledRejection", onUnhandled);
    try {
      // Connected first: a connect slowed by a busy machine sent the sleep after the subscription.
      await admin.ping();
      const sleeping = admin.call("DEBUG", "SLEEP", "1.5");
      await new Promise((r) => setTimeout(r, 30));
      // A new event's channel, subscribed while Redis sleeps, by two watchers at once: the
      // first to give up subscribes afresh for the other, whose watch still stands then.
      const watches = ["u1", "u2"].map((userId) => own.hub.watch("slow-event", userId, () => undefined));
      for (const watch of watches) await expect(watch).rejects.toThrow(/redis is unavailable/);
      // That fresh subscription runs out too while Redis sleeps, with nobody left to wait for it.
      await new Promise((r) => setTimeout(r, COMMAND_TIMEOUT_MS * 2));
      await sleeping;
      expect(unhandled).toEqual([]);
      const stop = await own.hub.watch("slow-event", "u3", () => undefined);
      expect(own.hub.watcherCount()).toBe(1);
      stop();
    } finally {
      process.off("unhandledRejection", onUnhandled);
      admin.disconnect();
      await own.close();
      await slow.dispose();
    }
  });
});
