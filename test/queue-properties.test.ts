import { randomUUID } from "node:crypto";
import fc from "fast-check";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ReservationStatus } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { eventKeys } from "../src/queue/keys.js";
import { QueueStore } from "../src/queue/queue-store.js";
import { StateError, StateErrorCode } from "../src/queue/state-errors.js";
import { createRedisClient } from "../src/redis/redis-client.js";
import { startTestRedis, type TestRedis } from "./helpers/redis-server.js";

// Random concurrent mixes of every state change, against a real Redis; after
// each step the queue's invariants are checked from Redis itself.

let server: TestRedis;
let redis: Redis;
beforeAll(async () => {
  server = await startTestRedis();
  redis = createRedisClient({ url: server.url, commandTimeoutMs: 5000 });
  await redis.connect();
});
afterAll(async () => {
  redis.disconnect();
  await server.dispose();
});

const USERS = Array.from({ length: 12 }, (_, i) => `u${i}`);
const user = fc.constantFrom(...USERS);
const op = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant("reserve" as const), user, party: fc.integer({ min: 1, max: 3 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("cancel" as const), user }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("confirm" as const), user }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("expire" as const), user }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("capacity" as const), value: fc.integer({ min: 1, max: 6 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("process" as const) }) },
);
type Op = typeof op extends fc.Arbitrary<infer T> ? T : never;

async function apply(store: QueueStore, eventId: string, holdsKey: string, o: Op): Promise<{ created: boolean }> {
  switch (o.kind) {
    case "reserve":
      return { created: !(await store.reserve(eventId, o.user, "", undefined, o.party)).alreadyKnown };
    case "cancel":
      await store.cancel(eventId, o.user, undefined);
      break;
    case "confirm": {
      const s = await store.status(eventId, o.user);
      await store.confirm(eventId, o.user, s.seq).catch(() => undefined); // refusals are fine here
      break;
    }
    case "expire":
      // Time travel for one hold: its end moves to the past, then the sweep runs.
      await redis.zadd(holdsKey, "XX", 1, o.user);
      await store.expireHolds(eventId);
      break;
    case "capacity":
      // Refused when a waiting party would never fit (it would stop the line).
      await store.updateEvent(eventId, { capacity: o.value }).catch((err: unknown) => {
        if (!(err instanceof StateError && err.code === StateErrorCode.PartyExceedsCapacity)) throw err;
      });
      break;
    case "process":
      await store.processQueue(eventId);
      break;
  }
  return { created: false };
}

describe("queue invariants under random concurrent operations", () => {
  it("hold after every step", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 4 }), fc.array(fc.array(op, { minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 15 }), async (capacity, steps) => {
        const store = new QueueStore(redis, { prefix: `prop-${randomUUID()}`, defaultCapacity: 1 });
        const eventId = "e";
        await store.createEvent(eventId, { name: eventId, capacity, holdSeconds: 60, opensAt: 0, closesAt: 0, maxPartySize: 3 });
        const keys = eventKeys(store.options.prefix, eventId);
        const [, seatsKey = "", waitingKey = "", holdsKey = "", goneKey = ""] = keys;
        const partiesKey = keys[12] ?? "";
        const everJoined = new Set<string>();
        let created = 0;
        let lastSeats = 0;
        let lastCapacity = capacity;
        const lastPosition = new Map<string, number>(); // "user:seq" -> position

        for (const step of steps) {
          const results = await Promise.all(step.map((o) => apply(store, eventId, holdsKey, o)));
          created += results.filter((r) => r.created).length;
          for (const o of step) if (o.kind === "reserve") everJoined.add(o.user);

          const seats = await redis.hgetall(seatsKey);
          const waiting = await redis.zrange(waitingKey, 0, -1, "WITHSCORES");
          const gone = await redis.hgetall(goneKey);
          const info = await store.getEvent(eventId);
          const waitingUsers = waiting.filter((_, i) => i % 2 === 0);
          const waitingSeqs = waiting.filter((_, i) => i % 2 === 1).map(Number);
          const seated = Object.keys(seats);
          // A party takes as many seats as its size.
          const parties = await redis.hgetall(partiesKey);
          const sizeOf = (u: string): number => Number(parties[u] ?? "1");
          const seatsTaken = seated.reduce((sum, u) => sum + sizeOf(u), 0);

          // Never more seats than the capacity in force when they were given: a lowered
          // capacity takes no seat back, and nothing beyond it is given afterwards.
          const capacities = step.flatMap((o) => (o.kind === "capacity" ? [o.value] : []));
          expect(seatsTaken).toBeLessThanOrEqual(Math.max(lastSeats, lastCapacity, info.capacity, ...capacities));
          // Never a free seat while the head of the line fits in the free seats (strict order: it waits for room).
          if (waitingUsers[0] !== undefined) expect(sizeOf(waitingUsers[0])).toBeGreaterThan(info.capacity - seatsTaken);
          // Only live entries keep a party record.
          for (const u of Object.keys(parties)) expect(u in seats || waitingUsers.includes(u)).toBe(true);
          // Nobody in two places; nobody who joined is lost.
          for (const u of USERS) {
            const places = [u in seats, waitingUsers.includes(u), u in gone].filter(Boolean).length;
            expect(places).toBeLessThanOrEqual(1);
            if (everJoined.has(u)) expect(places).toBe(1);
          }
          // FIFO: everyone promoted had joined before everyone still waiting.
          const minWaiting = Math.min(...waitingSeqs);
          for (const value of Object.values(seats)) {
            if (value.endsWith("p")) expect(Number(value.slice(0, -1))).toBeLessThan(minWaiting);
          }
          // Positions: exact, dense, and never growing for an entry that still waits.
          const statuses = await Promise.all(waitingUsers.map((u) => store.status(eventId, u)));
          for (const [i, s] of statuses.entries()) {
            expect(s.status).toBe(ReservationStatus.QUEUED);
            expect(s.position).toBe(i + 1);
            const key = `${waitingUsers[i] ?? ""}:${s.seq}`;
            expect(s.position).toBeLessThanOrEqual(lastPosition.get(key) ?? Infinity);
            lastPosition.set(key, s.position);
          }
          // Counts agree with the sets.
          expect(info).toMatchObject({ seats: seatsTaken, waiting: waitingUsers.length, joinedTotal: created });
          const held = await redis.zrange(holdsKey, 0, -1);
          expect(info.held).toBe(held.reduce((sum, u) => sum + sizeOf(u), 0));
          lastSeats = seatsTaken;
          lastCapacity = info.capacity;
        }
      }),
      { numRuns: 150 },
    );
  });
});
