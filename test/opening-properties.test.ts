import { randomUUID } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { useTestStore } from "./helpers/store.js";
import { ReservationStatus } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { drawValueOf } from "../src/queue/draw.js";
import { eventKeys } from "../src/queue/keys.js";
import { QueueStore } from "../src/queue/queue-store.js";
import { ADMIT_BURST_MS, ADMIT_SPAN_MS } from "../src/queue/script-codes.js";

// Random openings against a real Redis: joins and cancels into a pre-queue, then
// after the opening draw chunks of random sizes interleaved with joins, cancels,
// ProcessQueue and capacity changes, parties of 1 to 3 and an optional pace.
// Checked after every step: seats within capacity counting party sizes, nobody in
// two places, nobody seated from the pre-queue before the draw is done, positions
// never growing, later joins behind every entrant, the pace's bound; and once
// drawn, that the line is the entrants ordered by the published function and the
// published list is exactly their values.
const t = useTestStore();

const USERS = Array.from({ length: 10 }, (_, i) => `u${i}`);
const user = fc.constantFrom(...USERS);
const party = fc.integer({ min: 1, max: 3 });
const before = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("join" as const), user, party }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("cancel" as const), user }) },
);
const after = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("draw" as const), chunk: fc.integer({ min: 1, max: 4 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("join" as const), user, party }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("cancel" as const), user }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("process" as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("capacity" as const), value: fc.integer({ min: 3, max: 6 }) }) },
);

describe("the opening under random operations", () => {
  it("keeps the line's invariants, and draws exactly the published permutation", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 3, max: 5 }),
        fc.constantFrom(0, 120),
        fc.array(before, { minLength: 1, maxLength: 14 }),
        fc.array(after, { minLength: 1, maxLength: 16 }),
        async (capacity, admitPerMinute, early, late) => {
          const store = new QueueStore(t.redis, { prefix: `open-${randomUUID()}`, defaultCapacity: 1 });
          const keys = eventKeys(store.options.prefix, "e");
          const [, seatsKey = "", waitingKey = "", , goneKey = ""] = keys;
          const [drawnKey = "", partiesKey = ""] = [keys[9], keys[12]];
          const opensAt = Date.now() + 250;
          await store.createEvent("e", { name: "e", capacity, holdSeconds: 0, opensAt, closesAt: 0, maxPartySize: 3, admitPerMinute });
          const secrets = new Map<string, string>(); // an entrant's secret, while its entry lives
          for (const o of early) {
            if (o.kind === "join") {
              const r = await store.reserve("e", o.user, "", undefined, o.party);
              // (an entrant only if it joined before the opening: a busy machine may be late)
              if (!r.alreadyKnown && r.status === ReservationStatus.PREQUEUED) secrets.set(o.user, r.entrySecret);
            } else {
              await store.cancel("e", o.user, undefined);
              secrets.delete(o.user);
            }
          }
          await new Promise((r) => setTimeout(r, Math.max(0, opensAt + 5 - Date.now())));
          const started = performance.now();
          const lastPosition = new Map<string, number>();
          let admitted = 0;
          let checkedDraw = false;

          const check = async (): Promise<void> => {
            const e = await store.getEvent("e");
            const seats = await t.redis.hgetall(seatsKey);
            const drawn = await t.redis.zrange(drawnKey, 0, -1);
            const waiting = await t.redis.zrange(waitingKey, 0, -1);
            const gone = await t.redis.hgetall(goneKey);
            const parties = await t.redis.hgetall(partiesKey);
            const size = (u: string): number => Number(parties[u] ?? "1");
            const seated = Object.keys(seats);
            const taken = seated.reduce((sum, u) => sum + size(u), 0);
            expect(taken).toBe(e.seats);
            expect(taken).toBeLessThanOrEqual(Math.max(capacity, e.capacity, ...late.flatMap((o) => (o.kind === "capacity" ? [o.value] : []))));
            for (const u of USERS) expect([u in seats, drawn.includes(u), waiting.includes(u), u in gone].filter(Boolean).length).toBeLessThanOrEqual(1);
            const line = [...drawn, ...waiting];
            if (e.draw.state !== "done") {
              // Nobody from the pre-queue is seated before the draw is done.
              for (const u of seated) expect(secrets.has(u)).toBe(false);
            } else if (!checkedDraw) {
              checkedDraw = true;
              // The line's head is the entrants still in line, ordered by the published function.
              const entrantsInLine = line.filter((u) => secrets.has(u));
              const expected = [...seated.filter((u) => secrets.has(u)), ...entrantsInLine]
                .map((u) => ({ u, v: drawValueOf(e.draw.finalSeed, secrets.get(u) ?? "") }))
                .sort((a, b) => a.v - b.v || (a.u < b.u ? -1 : 1));
              expect(Array.from(await store.drawn.get("e", e.draw.finalSeed))).toEqual(expected.map((x) => x.v));
              expect(entrantsInLine).toEqual(expected.map((x) => x.u).filter((u) => !(u in seats)));
            }
            // Later joins stand behind every entrant; positions never grow.
            const firstLate = line.findIndex((u) => !secrets.has(u));
            if (firstLate >= 0) expect(line.slice(firstLate).every((u) => !secrets.has(u))).toBe(true);
            for (const [i, u] of line.entries()) {
              const s = await store.status("e", u);
              if (s.status !== ReservationStatus.QUEUED) continue;
              expect(s.position).toBe(i + 1);
              const key = `${u}:${s.seq}`;
              expect(s.position).toBeLessThanOrEqual(lastPosition.get(key) ?? Infinity);
              lastPosition.set(key, s.position);
            }
            // No free seat while the head of the line fits (once drawn, unpaused, unpaced).
            if (e.draw.state === "done" && admitPerMinute === 0 && line[0] !== undefined) expect(size(line[0])).toBeGreaterThan(e.capacity - taken);
            if (admitPerMinute > 0) expect(admitted).toBeLessThanOrEqual(Math.floor((performance.now() - started + ADMIT_BURST_MS) / (ADMIT_SPAN_MS / admitPerMinute)));
          };
          for (const o of [...late, { kind: "finish" as const }]) {
            switch (o.kind) {
              case "draw":
                admitted += (await store.draw("e", o.chunk)).promoted.length;
                break;
              case "finish":
                for (let i = 0; i < 20 && (await store.getEvent("e")).draw.state !== "done"; i++) admitted += (await store.draw("e", 5)).promoted.length;
                break;
              case "join": {
                const r = await store.reserve("e", o.user, "", undefined, o.party);
                if (!r.alreadyKnown && r.status === ReservationStatus.RESERVED) admitted += 1;
                break;
              }
              case "cancel":
                admitted += (await store.cancel("e", o.user, undefined)).promoted.length;
                secrets.delete(o.user); // (a cancelled entrant who joins again is a later join)
                break;
              case "process":
                admitted += (await store.processQueue("e")).length;
                break;
              case "capacity":
                admitted += (await store.updateEvent("e", { capacity: o.value })).length;
                break;
            }
            await check();
          }
          expect((await store.getEvent("e")).draw.state).toBe("done");
        },
      ),
      { numRuns: 40 },
    );
  }, 120_000);
});
