import { describe, expect, it } from "vitest";
import { useTestStore } from "./helpers/store.js";
import { ReservationStatus } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { ADMIT_BURST_MS, ADMIT_SPAN_MS } from "../src/queue/script-codes.js";
import { TEST_ADMIN_TOKEN, useTestService } from "./helpers/service.js";
import { until } from "./helpers/wait.js";

// Paced entry (admit_per_minute) on a real Redis: admissions never outrun the
// pace, whatever admits them (a Reserve, ProcessQueue, a cancel, the sweeper),
// and the line keeps its order.
const t = useTestStore();

/** The most the pace admits in `ms` (GCRA bound; see ADMIT_SPAN_MS). */
const bound = (perMinute: number, ms: number): number => Math.floor((ms + ADMIT_BURST_MS) / (ADMIT_SPAN_MS / perMinute));

describe("admit_per_minute", () => {
  it("admits no faster than the pace, in line order, however the admissions are asked for", async () => {
    const perMinute = 3000; // one every 20.3 ms, up to a second's worth at once
    const users = Array.from({ length: 400 }, (_, i) => `u${String(i).padStart(3, "0")}`);
    const started = performance.now();
    await t.store.createEvent("paced", { name: "p", capacity: 10_000, holdSeconds: 0, opensAt: 0, closesAt: 0, admitPerMinute: perMinute });
    const admitted: string[] = [];
    for (const u of users) {
      const r = await t.store.reserve("paced", u);
      if (r.status === ReservationStatus.RESERVED) admitted.push(u);
    }
    // Seats are free, yet Reserve and ProcessQueue take turns with the sweeper under one pace.
    for (let i = 0; i < 30; i++) {
      admitted.push(...(await t.store.processQueue("paced")));
      admitted.push(...(await t.store.expireHolds("paced")).promoted);
      await new Promise((r) => setTimeout(r, 30));
    }
    const elapsed = performance.now() - started;
    expect(admitted.length).toBeGreaterThan(0);
    expect(admitted.length).toBeLessThanOrEqual(bound(perMinute, elapsed));
    // In line order: those seated at once first, then the queue front to back.
    expect(admitted).toEqual(users.slice(0, admitted.length));
    const e = await t.store.getEvent("paced");
    expect(e).toMatchObject({ admitPerMinute: perMinute, seats: admitted.length, waiting: users.length - admitted.length });
    // The wait estimate knows the pace before any promotion history exists.
    const last = await t.store.status("paced", users.at(-1) ?? "");
    expect(last.admitPerMinute).toBe(perMinute);
  });

  it("a cancel's freed seat waits for the pace too; UpdateEvent can lift it, and Reset restarts it", async () => {
    await t.store.createEvent("slow", { name: "s", capacity: 1, holdSeconds: 0, opensAt: 0, closesAt: 0, admitPerMinute: 1 });
    expect((await t.store.reserve("slow", "a")).status).toBe(ReservationStatus.RESERVED);
    expect((await t.store.reserve("slow", "b")).status).toBe(ReservationStatus.QUEUED);
    // One a minute: the seat a cancel frees stays free until the pace allows.
    expect((await t.store.cancel("slow", "a", undefined)).promoted).toEqual([]);
    expect(await t.store.processQueue("slow")).toEqual([]);
    expect((await t.store.getEvent("slow")).seats).toBe(0);
    // A faster pace applies at once, not after the slow pace's schedule.
    expect(await t.store.updateEvent("slow", { admitPerMinute: 6000 })).toEqual(["b"]);
    await t.store.reserve("slow", "b2");
    expect((await t.store.cancel("slow", "b", undefined)).promoted).toEqual(["b2"]);
    await t.store.updateEvent("slow", { admitPerMinute: 1 });
    await t.store.reset("slow");
    expect((await t.store.reserve("slow", "c")).status).toBe(ReservationStatus.RESERVED);
  });
});

describe("admit_per_minute through the service", () => {
  const env = useTestService();
  it("is set over REST, drives the sweeper's admissions, and shows in the estimated wait", async () => {
    const post = async (path: string, body: unknown) =>
      (await fetch(env.svc.baseUrl + path, { method: "POST", headers: { "content-type": "application/json", "x-token": TEST_ADMIN_TOKEN }, body: JSON.stringify(body) })).json() as Promise<Record<string, unknown>>;
    const created = await post("/v1/events", { event_id: "paced-rest", capacity: 100, admit_per_minute: 600 });
    expect(created["event"]).toMatchObject({ admit_per_minute: 600 });
    const started = performance.now();
    for (let i = 0; i < 40; i++) await post("/v1/events/paced-rest/reserve", { user_id: `r${i}` });
    const status = await fetch(`${env.svc.baseUrl}/v1/events/paced-rest/status/r39`).then((r) => r.json() as Promise<Record<string, unknown>>);
    // At 600 a minute (one every ~102 ms), number N waits at least N x 102 ms.
    const position = Number(status["position"]);
    expect(position).toBeGreaterThan(0);
    expect(Number.parseFloat(String(status["estimated_wait"]))).toBeGreaterThanOrEqual((position * ADMIT_SPAN_MS) / 600 / 1000 - 0.001);
    // The sweepers admit as the pace allows, with no call asking.
    const seatedAfter = async (): Promise<number> => {
      const { event } = (await fetch(`${env.svc.baseUrl}/v1/events/paced-rest`).then((r) => r.json())) as { event: { counts: { reserved: number } } };
      return event.counts.reserved;
    };
    expect(await until(async () => (await seatedAfter()) >= 8, 5000)).toBe(true);
    expect(await seatedAfter()).toBeLessThanOrEqual(bound(600, performance.now() - started));
    expect(await seatedAfter()).toBeLessThan(40);
  });
});
