import pino from "pino";
import { describe, expect, it } from "vitest";
import { ReservationStatus } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { eventKeys } from "../src/queue/keys.js";
import { startHoldSweeper, type HoldSweeper } from "../src/queue/hold-sweeper.js";
import { QueueStore } from "../src/queue/queue-store.js";
import { useTestStore } from "./helpers/store.js";

// Five workers' sweepers on one Redis (each its own QueueStore, as each
// worker has): every event is swept by one of them at a time, holds still run
// out on time, and when an event's sweeper stops another takes it over.
const { RESERVED } = ReservationStatus;
const t = useTestStore();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = pino({ level: "silent" });
const INTERVAL_MS = 100; // lease: 8 sweeps, 800 ms
const EVENTS = 10;
const SWEEPERS = 5;

async function until(what: string, ok: () => Promise<boolean>, ms = 8000): Promise<void> {
  const started = Date.now();
  while (!(await ok())) {
    if (Date.now() - started > ms) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(50);
  }
}

describe("workers' hold sweepers", () => {
  it("sweep each event one at a time, still expire holds on time, and hand an event over when its sweeper stops", async () => {
    const prefix = t.store.options.prefix;
    const events = Array.from({ length: EVENTS }, (_, i) => `e${i}`);
    for (const e of events) {
      await t.store.createEvent(e, { name: e, capacity: 1, holdSeconds: 1, opensAt: 0, closesAt: 0 });
      await t.store.reserve(e, "a");
      await t.store.reserve(e, "b");
    }
    const sweepers: HoldSweeper[] = Array.from({ length: SWEEPERS }, () => startHoldSweeper(new QueueStore(t.redis, { prefix, defaultCapacity: 1 }), log, INTERVAL_MS));
    try {
      // a's hold (1 s) runs out in every event and b is promoted, by whichever sweeper holds it.
      await until("b promoted everywhere", async () => (await Promise.all(events.map((e) => t.store.status(e, "b")))).every((s) => s.status === RESERVED && s.promoted));
      // Then only the sweepers call scripts: count their calls for 2 s.
      await t.redis.config("RESETSTAT");
      const started = Date.now();
      await sleep(2000);
      const calls = Number(/cmdstat_evalsha:calls=(\d+)/.exec(await t.redis.info("commandstats"))?.[1] ?? 0);
      const sweepsWithoutLease = SWEEPERS * EVENTS * ((Date.now() - started) / INTERVAL_MS);
      // Without a lease, five sweepers make 50 calls per event per second. With it: the holder's 10,
      // and each other one asks about twice a second (what is left of an 800 ms lease renewed at half).
      expect(calls).toBeGreaterThan(0);
      expect(calls).toBeLessThan(0.6 * sweepsWithoutLease);
      const holders = await Promise.all(events.map(async (e) => t.redis.hget(eventKeys(prefix, e)[0] ?? "", "sweeper")));
      for (const h of holders) expect(sweepers.map((s) => s.id)).toContain(h);

      // The sweeper of e0 stops and lets go of its events: another takes e0 at its next sweep, and d gets c's seat when c's hold runs out.
      const holder = sweepers.find((s) => s.id === holders[0]);
      await holder?.stop();
      for (const e of events) expect(await t.redis.hget(eventKeys(prefix, e)[0] ?? "", "sweeper")).not.toBe(holder?.id);
      expect(await t.store.reserve("e0", "c")).toMatchObject({ status: RESERVED }); // b's hold ran out while counting
      await t.store.reserve("e0", "d");
      await until("d promoted after the sweeper of e0 stopped", async () => (await t.store.status("e0", "d")).status === RESERVED);
      const taker = await t.redis.hget(eventKeys(prefix, "e0")[0] ?? "", "sweeper");
      expect(taker).not.toBe(holder?.id);
      expect(sweepers.map((s) => s.id)).toContain(taker);
    } finally {
      await Promise.all(sweepers.map((s) => s.stop()));
    }
  });
});
