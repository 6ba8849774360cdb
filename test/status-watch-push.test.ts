import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { beforeAll, describe, expect, it } from "vitest";
import { ReservationStatus, StatusChange, TicketQueueService } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { StatusWatch, type StatusUpdate } from "../src/watch/status-watcher.js";
import type { StreamSink } from "../src/watch/push-stream.js";
import { TEST_ADMIN_TOKEN, useTestService } from "./helpers/service.js";
import { until } from "./helpers/wait.js";

// StatusWatch on its own, against the service's real store and change hub: what
// a writer may do to it while it is told (throw, stop it), and readers that ask
// twice at once.

const env = useTestService();
const admin = { headers: { "x-token": TEST_ADMIN_TOKEN } };
let client: ReturnType<typeof createClient<typeof TicketQueueService>>;
let n = 0;
beforeAll(() => {
  client = createClient(TicketQueueService, createGrpcTransport({ baseUrl: env.svc.baseUrl }));
});

/** An event of one seat, `ahead` seated or waiting in front of "me", who waits. */
async function line(ahead: number): Promise<string> {
  const eventId = `p${++n}`;
  await client.createEvent({ eventId, capacity: 1 }, admin);
  for (let i = 0; i < ahead; i++) await client.reserve({ eventId, userId: `a${i}` });
  await client.reserve({ eventId, userId: "me" });
  return eventId;
}

const watchOf = (eventId: string, userId: string, signal = new AbortController().signal) => new StatusWatch(env.svc.store, env.svc.hub, eventId, userId, undefined, { signal: () => signal });

describe("StatusWatch pushed", () => {
  it("a writer that throws on the first update: the watch lets go of the hub and is told the failure", async () => {
    const eventId = await line(1);
    const told: string[] = [];
    const sink: StreamSink<StatusUpdate> = {
      message: () => {
        throw new Error("cannot write");
      },
      end: () => told.push("end"),
      fail: (err) => told.push(`fail: ${String(err)}`),
    };
    watchOf(eventId, "me").push(sink);
    expect(await until(() => told.length > 0)).toBe(true);
    expect(told).toEqual(["fail: Error: cannot write"]);
    expect(await until(() => env.svc.hub.watcherCount() === 0)).toBe(true);
  });

  it("a writer that stops the watch while told its final update is told nothing more", async () => {
    const eventId = await line(0);
    const watch = watchOf(eventId, "nobody"); // NOT_FOUND: final at once
    const told: string[] = [];
    watch.push({ message: (u) => (told.push(`message ${u.state.status}`), watch.stop()), end: () => told.push("end"), fail: () => told.push("fail") });
    expect(await until(() => told.length > 0)).toBe(true);
    await new Promise((r) => setTimeout(r, 50));
    expect(told).toEqual([`message ${ReservationStatus.NOT_FOUND}`]);
    expect(env.svc.hub.watcherCount()).toBe(0);
  });

  it("a writer that stops the watch while told its first update: the watch lets go and pushes nothing more", async () => {
    const eventId = await line(2);
    const watch = watchOf(eventId, "me");
    const told: StatusChange[] = [];
    watch.push({ message: (u) => (told.push(u.change), watch.stop()), end: () => undefined, fail: () => undefined });
    expect(await until(() => told.length > 0)).toBe(true);
    expect(await until(() => env.svc.hub.watcherCount() === 0)).toBe(true);
    await client.adminCancel({ eventId, userId: "a1" }, admin);
    await new Promise((r) => setTimeout(r, 100));
    expect(told).toEqual([StatusChange.INITIAL]);
  });
});

describe("StatusWatch read", () => {
  it("two next() calls at once settle in order, as a generator's do", async () => {
    const eventId = await line(3);
    const leave = new AbortController();
    const it = watchOf(eventId, "me", leave.signal)[Symbol.asyncIterator]();
    expect((await it.next()).value).toMatchObject({ change: StatusChange.INITIAL, state: { position: 3 } });
    const first = it.next();
    const second = it.next();
    await client.adminCancel({ eventId, userId: "a2" }, admin);
    expect((await first).value).toMatchObject({ change: StatusChange.POSITION, state: { position: 2 } });
    await client.adminCancel({ eventId, userId: "a1" }, admin);
    expect((await second).value).toMatchObject({ change: StatusChange.POSITION, state: { position: 1 } });
    const third = it.next();
    leave.abort();
    // Cut by its signal before a final state: it fails with the signal's reason (a passed deadline is told as one).
    await expect(third).rejects.toBe(leave.signal.reason);
    expect(await until(() => env.svc.hub.watcherCount() === 0)).toBe(true);
  });
});
