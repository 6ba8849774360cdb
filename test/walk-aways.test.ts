import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { describe, expect, it } from "vitest";
import { useTestStore } from "./helpers/store.js";
import { ReservationStatus, TicketQueueService } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { toConnectError } from "../src/rpc/errors.js";
import { TEST_ADMIN_TOKEN, useTestService } from "./helpers/service.js";

// Walk-aways (presence_timeout_seconds) on a real Redis: a waiting user nobody
// has seen for the timeout and its grace leaves the line; a GetStatus or an
// open WatchStatus stream keeps them; nobody is dropped before the draw.
const { QUEUED, ABANDONED, PREQUEUED } = ReservationStatus;
const t = useTestStore();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const settings = (presenceTimeoutSeconds: number, opensAt = 0) => ({ name: "w", capacity: 1, holdSeconds: 0, opensAt, closesAt: 0, presenceTimeoutSeconds });

describe("presence_timeout_seconds", () => {
  it("drops the unseen after the timeout and its grace, keeps the seen, and counts them", async () => {
    await t.store.createEvent("w", settings(1));
    for (const u of ["seated", "kept", "once", "never"]) await t.store.reserve("w", u);
    const started = Date.now();
    while (Date.now() - started < 2400) {
      await t.store.touch("w", ["kept"]);
      await sleep(300);
    }
    // 1 s timeout + 1 s grace: "once" and "never" (seen only when they joined) are gone.
    const swept = await t.store.expireHolds("w");
    expect(swept.abandoned).toBe(2);
    expect((await t.store.status("w", "kept")).position).toBe(1);
    expect((await t.store.status("w", "never")).status).toBe(ABANDONED);
    expect((await t.store.getEvent("w")).abandonedTotal).toBe(2);
    expect((await t.store.feed("w", "0", 10)).filter((f) => f.kind === "abandoned").map((f) => f.userId).sort()).toEqual(["never", "once"]);
    // Their entries are ended: no confirm, a cancel changes nothing, a Reserve joins again at the back.
    await expect(t.store.confirm("w", "never", undefined)).rejects.toSatisfy((err) => toConnectError(err).code === Code.FailedPrecondition);
    expect((await t.store.cancel("w", "never", undefined)).status).toBe(ABANDONED);
    expect(await t.store.reserve("w", "once")).toMatchObject({ status: QUEUED, position: 2 });
    // A touch of a user no longer waiting writes nothing back.
    await t.store.touch("w", ["never"]);
    expect(await t.redis.zscore(`${t.store.options.prefix}:{w}:seen`, "never")).toBeNull();
  });

  it("drops nobody before the pre-queue is drawn: the clock starts at the draw", async () => {
    const opensAt = Date.now() + 1000;
    await t.store.createEvent("d", settings(1, opensAt));
    await t.store.reserve("d", "a");
    await t.store.reserve("d", "b");
    await sleep(opensAt + 2200 - Date.now()); // past opens_at + timeout + grace, but not drawn
    expect((await t.store.expireHolds("d")).abandoned).toBe(0);
    expect((await t.store.status("d", "a")).status).toBe(PREQUEUED);
    expect((await t.store.draw("d", 10)).done).toBe(true);
    expect((await t.store.expireHolds("d")).abandoned).toBe(0); // the draw just happened
    await sleep(2200);
    expect((await t.store.expireHolds("d")).abandoned).toBe(1); // the one not seated
  });

  it("costs one sorted-set entry per waiting user, and a touch of 20,000 in four calls", async () => {
    const N = 20_000;
    const used = async () => Number(/used_memory:(\d+)/.exec(await t.redis.info("memory"))?.[1]);
    const fill = async (eventId: string) => {
      for (let i = 0; i < N; i += 1000) await Promise.all(Array.from({ length: 1000 }, (_, j) => t.store.reserve(eventId, `user-${eventId}-${i + j}`)));
    };
    await t.store.createEvent("off", settings(0));
    await t.store.createEvent("on", settings(600));
    let before = await used();
    await fill("off");
    const off = ((await used()) - before) / N;
    before = await used();
    await fill("on");
    const on = ((await used()) - before) / N;
    const users = Array.from({ length: N }, (_, i) => `user-on-${i}`);
    const started = performance.now();
    for (let i = 0; i < N; i += 5000) await t.store.touch("on", users.slice(i, i + 5000));
    const touchMs = performance.now() - started;
    console.log(`walk-aways: ${(on - off).toFixed(0)} more bytes of Redis per waiting user with presence on (${on.toFixed(0)} vs ${off.toFixed(0)}); touching ${N.toLocaleString("en")} users took ${touchMs.toFixed(0)} ms in 4 calls`);
    expect(on - off).toBeLessThan(150);
  });
});

describe("presence through the service", () => {
  const env = useTestService();
  it("an open WatchStatus stream or GetStatus calls keep a user in line; the idle one leaves", async () => {
    const client = createClient(TicketQueueService, createGrpcTransport({ baseUrl: env.svc.baseUrl }));
    await client.createEvent({ eventId: "p", capacity: 1, presenceTimeoutSeconds: 2 }, { headers: { "x-token": TEST_ADMIN_TOKEN } });
    const tickets = new Map<string, string>();
    for (const userId of ["seated", "idle", "watcher", "poller"]) tickets.set(userId, (await client.reserve({ eventId: "p", userId })).ticket);
    const abort = new AbortController();
    const watching = (async () => {
      try {
        for await (const m of client.watchStatus({ eventId: "p", userId: "watcher", ticket: tickets.get("watcher") }, { signal: abort.signal })) void m;
      } catch {
        // aborted at the end
      }
    })();
    const started = Date.now();
    while (Date.now() - started < 6000) {
      await client.getStatus({ eventId: "p", userId: "poller" });
      await sleep(500);
    }
    abort.abort();
    await watching;
    // 2 s + 2 s of grace: the idle user is gone; the others stand where they were, one place up.
    expect((await client.getStatus({ eventId: "p", userId: "idle" })).status).toBe(ABANDONED);
    expect(await client.getStatus({ eventId: "p", userId: "watcher" })).toMatchObject({ status: QUEUED, position: 1 });
    expect(await client.getStatus({ eventId: "p", userId: "poller" })).toMatchObject({ status: QUEUED, position: 2 });
    expect((await client.getEvent({ eventId: "p" })).event?.counts?.abandonedTotal).toBe(1);
  }, 20_000);
});
