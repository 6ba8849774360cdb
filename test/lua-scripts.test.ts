import { randomUUID } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import { toConnectError } from "../src/rpc/errors.js";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ReservationStatus } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { eventKeys } from "../src/queue/keys.js";
import { QueueStore } from "../src/queue/queue-store.js";
import { LAYOUT } from "../src/queue/script-codes.js";
import { createRedisClient } from "../src/redis/redis-client.js";
import { startTestRedis, type TestRedis } from "./helpers/redis-server.js";

const { RESERVED, QUEUED, NOT_FOUND, CANCELLED, EXPIRED } = ReservationStatus;

let server: TestRedis;
let redis: Redis;
let store: QueueStore;
let prefix: string;

beforeAll(async () => {
  server = await startTestRedis();
  redis = createRedisClient({ url: server.url, commandTimeoutMs: 5000 });
  await redis.connect();
});
afterAll(async () => {
  redis.disconnect();
  await server.dispose();
});
beforeEach(() => {
  prefix = `test-${randomUUID()}`;
  store = new QueueStore(redis, { prefix, defaultCapacity: 2 });
});

const D = "default";
const keys = (eventId = D): { meta: string; seats: string; waiting: string; holds: string; gone: string } => {
  const [meta = "", seats = "", waiting = "", holds = "", gone = ""] = eventKeys(prefix, eventId);
  return { meta, seats, waiting, holds, gone };
};
// The store answers typed state errors; the code is the one the client receives.
const code = (err: unknown): Code => toConnectError(err).code;
const event = (name: string, capacity: number, holdSeconds = 0) => store.createEvent(name, { name, capacity, holdSeconds, opensAt: 0, closesAt: 0 });

describe("keys", () => {
  it("share one hash tag per event so an event lives in one cluster slot", () => {
    expect(eventKeys("tq", "default")).toEqual(["tq:{default}:meta", "tq:{default}:seats", "tq:{default}:waiting", "tq:{default}:holds", "tq:{default}:gone", "tq:{default}:rate", "tq:{default}:feed", "tq:{default}:retries", "tq:{default}:entrants", "tq:{default}:drawn", "tq:{default}:drawlist", "tq:{default}:seen", "tq:{default}:parties"]);
  });
});

describe("the codes shared with TS (src/queue/script-codes.ts)", () => {
  it("are named in every script, never written as literals", () => {
    const dir = "src/lua";
    const files = [...readdirSync(dir).map((f) => join(dir, f)), ...readdirSync(join(dir, "includes")).map((f) => join(dir, "includes", f))].filter((f) => f.endsWith(".lua"));
    expect(files.length).toBeGreaterThan(10);
    const literals = [/\{-\d/, /changed\(\{\{'/, /\{'[JLPSXU]'/, /feed\('/, /K_GONE, user, '/, /ST_\w+ = \d|status == \d|state\[1\] == \d/];
    for (const file of files) {
      const source = readFileSync(file, "utf8").replace(/--\[\[[\s\S]*?\]\]/g, "");
      for (const literal of literals) expect(literal.test(source), `${file}: ${String(literal)}`).toBe(false);
    }
  });
});

describe("script calls made together", () => {
  it("wait in the corked socket and go out in one write once the loop's callbacks are done", async () => {
    const calls = ["w1", "w2", "w3"].map((u) => store.reserve(D, u));
    // All three commands are buffered, none written yet.
    expect(redis.stream.writableCorked).toBe(1);
    expect(redis.stream.writableLength).toBeGreaterThan(3 * 200);
    await new Promise((resolve) => process.nextTick(resolve));
    expect(redis.stream.writableCorked).toBe(1);
    await new Promise((resolve) => setImmediate(resolve));
    expect(redis.stream.writableCorked).toBe(0);
    expect((await Promise.all(calls)).map((r) => r.status)).toEqual([RESERVED, RESERVED, QUEUED]);
  });

  it("share one write when each comes from its own callback, as each HTTP/2 stream's does", async () => {
    // Node drains process.nextTick's queue after every callback from native code
    // (each stream's events, each immediate): an uncork there wrote one command per write.
    const socket = redis.stream;
    let writes = 0;
    const count = <A extends unknown[], R>(write: (...args: A) => R) => (...args: A): R => {
      writes += 1;
      return write.apply(socket, args);
    };
    const { _write, _writev } = socket;
    socket._write = count(_write);
    if (_writev) socket._writev = count(_writev);
    try {
      const users = Array.from({ length: 20 }, (_, i) => `cb${i}`);
      const replies = await Promise.all(users.map((u) => new Promise((resolve, reject) => setImmediate(() => store.reserve(D, u).then(resolve, reject)))));
      expect(replies).toHaveLength(20);
      expect(writes).toBe(1);
    } finally {
      socket._write = _write;
      socket._writev = _writev;
    }
  });
});

describe("reserve-15.lua", () => {
  it("seats the first `capacity` users and queues the rest in FIFO order", async () => {
    expect(await store.reserve(D, "a")).toMatchObject({ status: RESERVED, position: 0, alreadyKnown: false, promoted: false, seq: 1 });
    expect(await store.reserve(D, "b")).toMatchObject({ status: RESERVED, position: 0, seq: 2 });
    expect(await store.reserve(D, "c")).toMatchObject({ status: QUEUED, position: 1, seq: 3 });
    expect(await store.reserve(D, "d")).toMatchObject({ status: QUEUED, position: 2 });
    expect(Object.keys(await redis.hgetall(keys().seats)).sort()).toEqual(["a", "b"]);
    expect(await redis.zrange(keys().waiting, 0, -1)).toEqual(["c", "d"]);
  });

  it("answers a known user with the same state and changes nothing", async () => {
    for (const u of ["a", "b", "c", "d"]) await store.reserve(D, u);
    expect(await store.reserve(D, "a")).toMatchObject({ status: RESERVED, alreadyKnown: true, seq: 1 });
    expect(await store.reserve(D, "d")).toMatchObject({ status: QUEUED, position: 2, alreadyKnown: true, seq: 4 });
    expect(await redis.hlen(keys().seats)).toBe(2);
    expect(await redis.zcard(keys().waiting)).toBe(2);
  });

  it("creates the default event with CAPACITY; afterwards the stored value wins", async () => {
    await store.reserve(D, "a");
    expect(await redis.hget(keys().meta, "capacity")).toBe("2");
    const bigger = new QueueStore(redis, { prefix, defaultCapacity: 100 });
    await bigger.reserve(D, "b");
    expect(await bigger.reserve(D, "c")).toMatchObject({ status: QUEUED, position: 1 });
  });

  it("refuses an unknown event with NotFound", async () => {
    await expect(store.reserve("nope", "a")).rejects.toSatisfy((e) => code(e) === Code.NotFound);
  });

  it("gives a held seat when the event has holds", async () => {
    await event("held", 1, 30);
    const r = await store.reserve("held", "a");
    expect(r.status).toBe(RESERVED);
    const now = Number((await redis.time())[0]) * 1000;
    expect(r.holdExpiresAt).toBeGreaterThanOrEqual(now + 29_000);
    expect(r.holdExpiresAt).toBeLessThanOrEqual(now + 31_000);
  });

  it("refuses before the pre-queue opens, while paused and after closes_at, saying why", async () => {
    const now = Date.now();
    await store.createEvent("later", { name: "later", capacity: 5, holdSeconds: 0, opensAt: now + 60_000, closesAt: 0, prequeueOpensAt: now + 30_000 });
    await expect(store.reserve("later", "a")).rejects.toSatisfy((e) => code(e) === Code.FailedPrecondition && /opens at/.test(String(e)));
    await store.createEvent("p", { name: "p", capacity: 5, holdSeconds: 0, opensAt: 0, closesAt: 0 });
    await store.updateEvent("p", { paused: true });
    await expect(store.reserve("p", "a")).rejects.toSatisfy((e) => code(e) === Code.FailedPrecondition && /paused/.test(String(e)));
    await store.updateEvent("p", { paused: false });
    expect(await store.reserve("p", "a")).toMatchObject({ status: RESERVED });
    await store.createEvent("over", { name: "over", capacity: 5, holdSeconds: 0, opensAt: now - 60_000, closesAt: now - 1000 });
    await expect(store.reserve("over", "a")).rejects.toSatisfy((e) => code(e) === Code.FailedPrecondition && /closed at/.test(String(e)));
  });
});

describe("status-14.lua", () => {
  it("reports reserved, queued with position, and not found, without scanning (ZRANK)", async () => {
    await store.reserve(D, "a");
    await store.reserve(D, "b");
    const pipeline = redis.pipeline();
    for (let i = 0; i < 50_000; i++) pipeline.zadd(keys().waiting, i + 10, `user-${i}`);
    await pipeline.exec();
    await redis.config("RESETSTAT");
    expect(await store.status(D, "a")).toMatchObject({ status: RESERVED, position: 0 });
    expect(await store.status(D, "user-49999")).toMatchObject({ status: QUEUED, position: 50_000 });
    expect(await store.status(D, "zzz")).toMatchObject({ status: NOT_FOUND, position: 0 });
    const stats = await redis.info("commandstats");
    const called = [...stats.matchAll(/^cmdstat_(\w+):calls=(\d+)/gm)].map((m) => m[1]);
    expect(called).toContain("zrank");
    for (const scan of ["lpos", "zrange", "zscan", "lrange", "zrangebyscore", "keys", "scan", "hgetall", "smembers"]) expect(called).not.toContain(scan);
  });

  it("reports an unknown event as NotFound, and the default event before its first use as empty", async () => {
    await expect(store.status("nope", "a")).rejects.toSatisfy((e) => code(e) === Code.NotFound);
    expect(await store.status(D, "a")).toMatchObject({ status: NOT_FOUND });
    expect(await redis.exists(keys().meta)).toBe(0);
  });
});

describe("cancel-14.lua", () => {
  it("a seated user's cancel promotes the head of the queue in the same step", async () => {
    for (const u of ["a", "b", "c", "d"]) await store.reserve(D, u);
    expect(await store.cancel(D, "a", 1)).toEqual({ status: CANCELLED, alreadyCancelled: false, promoted: ["c"] });
    expect(await store.status(D, "c")).toMatchObject({ status: RESERVED, promoted: true });
    expect(await store.status(D, "d")).toMatchObject({ status: QUEUED, position: 1 });
    expect(await store.status(D, "a")).toMatchObject({ status: CANCELLED });
    expect(await redis.hlen(keys().seats)).toBe(2);
  });

  it("a waiting user's cancel moves everyone behind up one", async () => {
    for (const u of ["a", "b", "c", "d", "e"]) await store.reserve(D, u);
    expect(await store.cancel(D, "c", 3)).toEqual({ status: CANCELLED, alreadyCancelled: false, promoted: [] });
    expect(await store.status(D, "d")).toMatchObject({ status: QUEUED, position: 1 });
    expect(await store.status(D, "e")).toMatchObject({ status: QUEUED, position: 2 });
  });

  it("repeating a cancel answers CANCELLED and changes nothing; Reserve then rejoins at the back", async () => {
    for (const u of ["a", "b", "c"]) await store.reserve(D, u);
    await store.cancel(D, "c", 3);
    expect(await store.cancel(D, "c", 3)).toEqual({ status: CANCELLED, alreadyCancelled: true, promoted: [] });
    await store.reserve(D, "d");
    expect(await store.reserve(D, "c")).toMatchObject({ status: QUEUED, position: 2, alreadyKnown: false, seq: 5 });
    // The old ticket (entry 3) no longer fits the new entry (5).
    await expect(store.cancel(D, "c", 3)).rejects.toSatisfy((e) => code(e) === Code.PermissionDenied);
    expect(await store.cancel(D, "c", undefined)).toMatchObject({ status: CANCELLED });
  });

  it("an unknown user answers NOT_FOUND", async () => {
    await store.reserve(D, "a");
    expect(await store.cancel(D, "ghost", 7)).toEqual({ status: NOT_FOUND, alreadyCancelled: false, promoted: [] });
  });
});

describe("holds: confirm-14.lua and expire-holds-14.lua", () => {
  it("confirm ends the hold; confirming again is a no-op", async () => {
    await event("h", 1, 60);
    const a = await store.reserve("h", "a");
    expect(await store.confirm("h", "a", a.seq)).toEqual({ alreadyConfirmed: false });
    expect(await store.status("h", "a")).toMatchObject({ status: RESERVED, holdExpiresAt: 0 });
    expect(await store.confirm("h", "a", a.seq)).toEqual({ alreadyConfirmed: true });
    const b = await store.reserve("h", "b");
    await expect(store.confirm("h", "b", b.seq)).rejects.toSatisfy((e) => code(e) === Code.FailedPrecondition && /queued/.test(String(e)));
  });

  it("an expired hold passes the seat to the next in line, who gets a hold too", async () => {
    await event("h", 1, 1);
    const a = await store.reserve("h", "a");
    await store.reserve("h", "b");
    await store.reserve("h", "c");
    expect(await store.expireHolds("h")).toEqual({ expired: 0, promoted: [], drawDue: false, abandoned: 0, sweptElsewhereMs: 0 });
    await new Promise((r) => setTimeout(r, 1100));
    await expect(store.confirm("h", "a", a.seq)).rejects.toSatisfy((e) => code(e) === Code.FailedPrecondition && /expired/.test(String(e)));
    expect(await store.expireHolds("h")).toEqual({ expired: 1, promoted: ["b"], drawDue: false, abandoned: 0, sweptElsewhereMs: 0 });
    expect(await store.expireHolds("h")).toEqual({ expired: 0, promoted: [], drawDue: false, abandoned: 0, sweptElsewhereMs: 0 });
    expect(await store.status("h", "a")).toMatchObject({ status: EXPIRED });
    const b = await store.status("h", "b");
    expect(b).toMatchObject({ status: RESERVED, promoted: true });
    expect(b.holdExpiresAt).toBeGreaterThan(0);
    expect(await store.status("h", "c")).toMatchObject({ status: QUEUED, position: 1 });
    const info = await store.getEvent("h");
    expect(info).toMatchObject({ seats: 1, held: 1, waiting: 1, joinedTotal: 3, promotedTotal: 1, expiredTotal: 1 });
  });

  it("one sweeper at a time: another is told the time left and changes nothing; it takes over when the lease lapses", async () => {
    await event("lease", 1, 1);
    await store.reserve("lease", "a");
    await store.reserve("lease", "b");
    const first = { id: "first", leaseMs: 1500 };
    const second = { id: "second", leaseMs: 1500 };
    expect(await store.expireHolds("lease", 1000, first)).toMatchObject({ expired: 0, sweptElsewhereMs: 0 });
    await new Promise((r) => setTimeout(r, 1100)); // a's hold ran out; first's lease has ~400 ms left
    const version = (await store.getEvent("lease")).version;
    const refused = await store.expireHolds("lease", 1000, second);
    expect(refused).toMatchObject({ expired: 0, promoted: [] });
    expect(refused.sweptElsewhereMs).toBeGreaterThan(0);
    expect(refused.sweptElsewhereMs).toBeLessThanOrEqual(400);
    expect((await store.getEvent("lease")).version).toBe(version);
    expect(await store.status("lease", "b")).toMatchObject({ status: QUEUED });
    // The holder sweeps (and renews); past the lease, with the holder silent, the other takes it.
    expect(await store.expireHolds("lease", 1000, first)).toMatchObject({ expired: 1, promoted: ["b"], sweptElsewhereMs: 0 });
    expect((await store.expireHolds("lease", 1000, second)).sweptElsewhereMs).toBeGreaterThan(1000);
    await new Promise((r) => setTimeout(r, 1600));
    expect(await store.expireHolds("lease", 1000, second)).toMatchObject({ sweptElsewhereMs: 0 });
    expect((await store.expireHolds("lease", 1000, first)).sweptElsewhereMs).toBeGreaterThan(1000);
    // Without a sweeper id (an operator, a test) the call sweeps regardless.
    expect((await store.expireHolds("lease")).sweptElsewhereMs).toBe(0);
    // A holder lets go (release-sweep-14.lua): only its own lease, and the other takes the event at once.
    expect(await store.releaseSweep("lease", "first")).toBe(false);
    expect(await store.releaseSweep("lease", "second")).toBe(true);
    expect(await store.expireHolds("lease", 1000, first)).toMatchObject({ sweptElsewhereMs: 0 });
  });

  it("a lease further off than the caller's own is not believed (Redis's clock stepped back, a hand edit)", async () => {
    await event("far", 1, 1);
    await redis.hset(keys("far").meta, "sweeper", "ghost", "sweeper_until", Date.now() + 3_600_000);
    expect(await store.expireHolds("far", 1000, { id: "live", leaseMs: 2000 })).toMatchObject({ sweptElsewhereMs: 0 });
    expect(await redis.hget(keys("far").meta, "sweeper")).toBe("live");
  });

  it("under DURABILITY=strict, a call that wrote nothing (turned away by the lease; a touch of an event that drops nobody) waits for no durability", async () => {
    const waitedFor: string[] = [];
    const strict = new QueueStore(redis, { prefix, defaultCapacity: 2, durability: { description: "counting", afterWrite: (key) => {
      waitedFor.push(key);
      return Promise.resolve();
    } } });
    await event("gated", 1, 1);
    await strict.touch("gated", ["a"]);
    expect(waitedFor).toEqual([]);
    expect(await strict.expireHolds("gated", 1000, { id: "holder", leaseMs: 2000 })).toMatchObject({ sweptElsewhereMs: 0 });
    expect(waitedFor).toHaveLength(1);
    expect((await strict.expireHolds("gated", 1000, { id: "other", leaseMs: 2000 })).sweptElsewhereMs).toBeGreaterThan(0);
    expect(waitedFor).toHaveLength(1);
    await strict.reserve("gated", "a");
    expect(waitedFor).toHaveLength(2);
  });

  it("a missing event is refused before any lease is written", async () => {
    await expect(store.expireHolds("no-such-event", 1000, { id: "s", leaseMs: 2000 })).rejects.toSatisfy((e) => code(e) === Code.NotFound);
    expect(await redis.exists(keys("no-such-event").meta)).toBe(0);
  });

  it("the default event keeps the old behaviour: a reservation is final", async () => {
    const a = await store.reserve(D, "a");
    expect(a.holdExpiresAt).toBe(0);
    expect(await store.confirm(D, "a", a.seq)).toEqual({ alreadyConfirmed: true });
  });
});

describe("process-queue-14.lua and update-event-14.lua", () => {
  it("ProcessQueue promotes exactly min(free seats, waiting) in FIFO order", async () => {
    for (const u of ["a", "b", "c", "d", "e"]) await store.reserve(D, u);
    expect(await store.processQueue(D)).toEqual([]);
    await redis.hdel(keys().seats, "a"); // a seat frees up without a script (as after a crash of another tool)
    expect(await store.processQueue(D)).toEqual(["c"]);
    await redis.hset(keys().meta, "capacity", 10);
    expect(await store.processQueue(D)).toEqual(["d", "e"]);
    expect(await store.processQueue(D)).toEqual([]);
  });

  it("raising capacity promotes in the same step; lowering takes no seat back", async () => {
    await event("e", 2);
    for (const u of ["a", "b", "c", "d", "e"]) await store.reserve("e", u);
    expect(await store.updateEvent("e", { capacity: 4 })).toEqual(["c", "d"]);
    expect(await store.updateEvent("e", { capacity: 1 })).toEqual([]);
    expect(await redis.hlen(keys("e").seats)).toBe(4);
    const [a] = [await store.status("e", "a")];
    await store.cancel("e", "a", a.seq);
    expect(await store.status("e", "e")).toMatchObject({ status: QUEUED, position: 1 }); // 3 seated > capacity 1: no promotion
  });
});

describe("reset-14.lua and create-event-14.lua", () => {
  it("Reset clears users and totals, keeps settings", async () => {
    await event("r", 2, 30);
    for (const u of ["a", "b", "c"]) await store.reserve("r", u);
    expect(await store.reset("r")).toEqual({ clearedReserved: 2, clearedWaiting: 1 });
    expect(await store.getEvent("r")).toMatchObject({ capacity: 2, holdSeconds: 30, seats: 0, waiting: 0, held: 0, joinedTotal: 0 });
    expect(await store.status("r", "a")).toMatchObject({ status: NOT_FOUND });
  });

  it("CreateEvent refuses an existing id and lists the event", async () => {
    await event("x", 3);
    await expect(event("x", 3)).rejects.toSatisfy((e) => code(e) === Code.AlreadyExists);
    expect(await store.eventIds()).toEqual(["default", "x"]);
  });
});

describe("the data layout version (a rolling restart)", () => {
  it("is stored when an event is created, by CreateEvent or by the default event's first use", async () => {
    await event("l", 2);
    await store.reserve(D, "a");
    expect(await redis.hget(keys("l").meta, "layout")).toBe(String(LAYOUT));
    expect(await redis.hget(keys().meta, "layout")).toBe(String(LAYOUT));
  });

  it("absent (an event created before it existed) reads as layout 1", async () => {
    await event("old", 1);
    await redis.hdel(keys("old").meta, "layout");
    expect(await store.reserve("old", "a")).toMatchObject({ status: RESERVED });
    expect(await store.status("old", "a")).toMatchObject({ status: RESERVED });
  });

  it("newer than these scripts: every script answers UNAVAILABLE (retryable) and writes nothing", async () => {
    await event("n", 1, 30);
    await store.reserve("n", "a");
    const b = await store.reserve("n", "b");
    await redis.hset(keys("n").meta, "layout", LAYOUT + 1);
    // One DUMP per key: on a cluster run too, no command spans two keys.
    const snapshot = async (): Promise<(Buffer | null)[]> => Promise.all(eventKeys(prefix, "n").map((key) => redis.dumpBuffer(key)));
    const before = await snapshot();
    const calls: [string, () => Promise<unknown>][] = [
      ["reserve", () => store.reserve("n", "c")],
      ["status", () => store.status("n", "a")],
      ["cancel", () => store.cancel("n", "b", b.seq)],
      ["confirm", () => store.confirm("n", "a", 1)],
      ["expireHolds", () => store.expireHolds("n")],
      ["processQueue", () => store.processQueue("n")],
      ["reset", () => store.reset("n")],
      ["updateEvent", () => store.updateEvent("n", { capacity: 5 })],
      ["getEvent", () => store.getEvent("n")],
      ["seatHolders", () => store.seatHolders("n", "0", 10)],
    ];
    for (const [name, call] of calls) {
      const err = await call().then(() => undefined, (e: unknown) => e);
      expect(err === undefined ? "answered" : code(err), name).toBe(Code.Unavailable);
      expect(toConnectError(err).message, name).toContain(`newer version of the service (layout ${LAYOUT + 1})`);
    }
    expect(await snapshot()).toEqual(before);
    await expect(event("n", 1)).rejects.toSatisfy((e) => code(e) === Code.AlreadyExists);
  });
});

describe("max_waiting in reserve-15.lua", () => {
  it("the store's default bounds every event without its own; an event's own 0 means none; the refusal writes nothing", async () => {
    const bounded = new QueueStore(redis, { prefix, defaultCapacity: 1, defaultMaxWaiting: 1 });
    await bounded.reserve(D, "a");
    await bounded.reserve(D, "b");
    const before = await redis.hgetall(keys().meta);
    await expect(bounded.reserve(D, "c")).rejects.toSatisfy((e) => code(e) === Code.ResourceExhausted);
    expect(await redis.hgetall(keys().meta)).toEqual(before);
    expect(await bounded.reserve(D, "b")).toMatchObject({ status: QUEUED, alreadyKnown: true });
    expect((await bounded.getEvent(D)).maxWaiting).toBe(1);
    await bounded.createEvent("open", { name: "open", capacity: 1, holdSeconds: 0, opensAt: 0, closesAt: 0, maxWaiting: 0 });
    for (const u of ["a", "b", "c", "d"]) await bounded.reserve("open", u);
    expect(await bounded.getEvent("open")).toMatchObject({ waiting: 3, maxWaiting: 0 });
  });
});

describe("idempotency keys in reserve-15.lua", () => {
  const KEY = "retry-key-0123456789abcdef";
  it("a repeat with the same key finds the entry (sameKey); another key or none does not", async () => {
    expect(await store.reserve(D, "a", KEY)).toMatchObject({ status: RESERVED, alreadyKnown: false, sameKey: false });
    expect(await store.reserve(D, "a", KEY)).toMatchObject({ status: RESERVED, alreadyKnown: true, sameKey: true });
    expect(await store.reserve(D, "a", "another-key-0123456789abc")).toMatchObject({ alreadyKnown: true, sameKey: false });
    expect(await store.reserve(D, "a")).toMatchObject({ alreadyKnown: true, sameKey: false });
    // Bound to the user: the same key for another user is nothing.
    expect(await store.reserve(D, "b", KEY)).toMatchObject({ alreadyKnown: false, sameKey: false });
  });

  it("after the entry ended, the same key answers the ended state and does not join again; another key joins", async () => {
    const first = await store.reserve(D, "a", KEY);
    await store.cancel(D, "a", first.seq);
    const joined = Number(await redis.hget(keys().meta, "joined_total"));
    expect(await store.reserve(D, "a", KEY)).toMatchObject({ status: CANCELLED, alreadyKnown: true, sameKey: true });
    expect(Number(await redis.hget(keys().meta, "joined_total"))).toBe(joined);
    const again = await store.reserve(D, "a", "second-key-0123456789abcd");
    expect(again).toMatchObject({ status: RESERVED, alreadyKnown: false });
    // The first key no longer finds anything: the new entry was made with another.
    expect(await store.reserve(D, "a", KEY)).toMatchObject({ alreadyKnown: true, sameKey: false });
    // Rejoining without a key clears the ended entry's.
    await store.cancel(D, "a", again.seq);
    await store.reserve(D, "a");
    expect(await store.reserve(D, "a", "second-key-0123456789abcd")).toMatchObject({ sameKey: false });
    // Only digests are stored, never the key; Reset removes them.
    const stored = await redis.hgetallBuffer(eventKeys(prefix, D)[7] ?? "");
    expect(Object.values(stored).some((v) => v.toString().includes("key"))).toBe(false);
    await store.reset(D);
    expect(await redis.exists(eventKeys(prefix, D)[7] ?? "")).toBe(0);
  });
});

