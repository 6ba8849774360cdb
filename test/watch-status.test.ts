import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { compressionGzip, createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { beforeAll, describe, expect, it } from "vitest";
import {
  EventState,
  ReservationStatus,
  SeatChange,
  StatusChange,
  TicketQueueService,
  type WatchEventResponse,
} from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { eventKeys } from "../src/queue/keys.js";
import { ChangeOpCode } from "../src/queue/script-codes.js";
import { ON_CLUSTER, TEST_ADMIN_TOKEN, useTestService } from "./helpers/service.js";
import { until } from "./helpers/wait.js";

let client: ReturnType<typeof createClient<typeof TicketQueueService>>;
const admin = { headers: { "x-token": TEST_ADMIN_TOKEN } };
let n = 0;

const env = useTestService();
beforeAll(async () => {
  client = createClient(TicketQueueService, createGrpcTransport({ baseUrl: env.svc.baseUrl }));
});

/** A new event with `capacity` seats and the given users reserved in order; their tickets. */
async function setup(capacity: number, users: string[], holdSeconds = 0): Promise<{ eventId: string; tickets: Map<string, string> }> {
  const eventId = `w${++n}`;
  await client.createEvent({ eventId, capacity, holdSeconds }, admin);
  const tickets = new Map<string, string>();
  for (const userId of users) tickets.set(userId, (await client.reserve({ eventId, userId })).ticket);
  return { eventId, tickets };
}

/** Reads a stream's messages one at a time. */
/** An event that closes in 1.5 s, "a" seated, "b" waiting, and b's watch open. */
async function closingSoon() {
  const eventId = `w${++n}`;
  const closesAt = new Date(Date.now() + 1500);
  await client.createEvent({ eventId, capacity: 1, closesAt: { seconds: BigInt(Math.floor(closesAt.getTime() / 1000)), nanos: (closesAt.getTime() % 1000) * 1e6 } }, admin);
  await client.reserve({ eventId, userId: "a" });
  const b = (await client.reserve({ eventId, userId: "b" })).ticket;
  return { eventId, w: reader(client.watchStatus({ eventId, userId: "b", ticket: b })) };
}

function reader<T>(stream: AsyncIterable<T>) {
  const it = stream[Symbol.asyncIterator]();
  return {
    async next(timeoutMs = 5000): Promise<T> {
      const timer = new Promise<never>((_, reject) => setTimeout(() => reject(new Error("no message in time")), timeoutMs));
      const r = await Promise.race([it.next(), timer]);
      if (r.done) throw new Error("stream ended");
      return r.value;
    },
    async ended(timeoutMs = 5000): Promise<boolean> {
      const timer = new Promise<never>((_, reject) => setTimeout(() => reject(new Error("stream did not end")), timeoutMs));
      return (await Promise.race([it.next(), timer])).done === true;
    },
  };
}

describe("WatchStatus", () => {
  it.each<[string, () => Transport]>([
    ["gRPC", () => createGrpcTransport({ baseUrl: env.svc.baseUrl })],
    ["gRPC-web", () => createGrpcWebTransport({ baseUrl: env.svc.baseUrl, httpVersion: "1.1" })],
    ["Connect", () => createConnectTransport({ baseUrl: env.svc.baseUrl, httpVersion: "2" })],
  ])("over %s: the state at once, then each move forward, then the promotion", async (_name, transport) => {
    const { eventId, tickets } = await setup(1, ["a", "b", "c", "d"]);
    const watcher = createClient(TicketQueueService, transport());
    const abort = new AbortController();
    const d = reader(watcher.watchStatus({ eventId, userId: "d", ticket: tickets.get("d") }, { signal: abort.signal }));
    const first = await d.next();
    expect(first).toMatchObject({ change: StatusChange.INITIAL, status: ReservationStatus.QUEUED, position: 3, eventState: EventState.OPEN });

    await client.cancel({ eventId, userId: "b", ticket: tickets.get("b") }); // ahead of d, waiting
    const second = await d.next();
    expect(second).toMatchObject({ change: StatusChange.POSITION, position: 2 });
    expect(second.version).toBeGreaterThan(first.version);

    await client.cancel({ eventId, userId: "a", ticket: tickets.get("a") }); // the seat passes to c
    expect(await d.next()).toMatchObject({ change: StatusChange.POSITION, position: 1 });

    await client.updateEvent({ eventId, capacity: 2 }, admin);
    const promoted = await d.next();
    expect(promoted).toMatchObject({ change: StatusChange.PROMOTED, status: ReservationStatus.RESERVED, promoted: true, position: 0 });
    abort.abort();
  });

  it("a storm of cancels ahead reaches a watcher as a few updates (WATCH_UPDATE_MS), its last position exact", async () => {
    const ahead = Array.from({ length: 60 }, (_, i) => `leaves-${i}`);
    const { eventId, tickets } = await setup(1, ["seated", ...ahead, "w"]);
    const abort = new AbortController();
    const w = reader(client.watchStatus({ eventId, userId: "w", ticket: tickets.get("w") }, { signal: abort.signal }));
    expect(await w.next()).toMatchObject({ change: StatusChange.INITIAL, position: 61 });
    // One after another, each moving everyone behind: each would be its own write to every watcher.
    for (const userId of ahead) await client.adminCancel({ eventId, userId }, admin);
    let messages = 0;
    let last = 61;
    while (last > 1) {
      const m = await w.next();
      messages++;
      expect(m.change).toBe(StatusChange.POSITION);
      expect(m.position).toBeLessThan(last);
      last = m.position;
    }
    expect(last).toBe(1);
    expect(messages).toBeLessThan(ahead.length / 2);
    abort.abort();
  });

  it("tells a pause and a resume (EVENT_STATE, with the new event_state)", async () => {
    const { eventId, tickets } = await setup(1, ["seated", "b"]);
    const abort = new AbortController();
    const b = reader(client.watchStatus({ eventId, userId: "b", ticket: tickets.get("b") }, { signal: abort.signal }));
    expect(await b.next()).toMatchObject({ change: StatusChange.INITIAL, eventState: EventState.OPEN });
    await client.updateEvent({ eventId, paused: true }, admin);
    expect(await b.next()).toMatchObject({ change: StatusChange.EVENT_STATE, eventState: EventState.PAUSED, position: 1 });
    await client.updateEvent({ eventId, paused: false }, admin);
    expect(await b.next()).toMatchObject({ change: StatusChange.EVENT_STATE, eventState: EventState.OPEN, position: 1 });
    abort.abort();
  });

  it("a watch whose state already holds an announcement its settings missed (the message still on its way) tells it when the message comes", async () => {
    const { eventId, tickets } = await setup(1, ["seated", "a", "b"]);
    const abort = new AbortController();
    // a's watch makes the hub read (and cache) the event's settings: no announcement.
    const a = reader(client.watchStatus({ eventId, userId: "a", ticket: tickets.get("a") }, { signal: abort.signal }));
    const first = await a.next();
    expect(first.change).toBe(StatusChange.INITIAL);
    expect(first.announcement?.messageKo ?? "").toBe("");
    // What the announce script does, its message held back: the text and a new version in Redis.
    const [meta = ""] = eventKeys(env.svc.prefix, eventId);
    const version = await env.svc.redis.hincrby(meta, "version", 1);
    await env.svc.redis.hset(meta, "announce_ko", "매진", "announce_en", "Sold out", "announce_at", Date.now());
    // b's watch reads its state at that version, and the cached settings from before.
    const b = reader(client.watchStatus({ eventId, userId: "b", ticket: tickets.get("b") }, { signal: abort.signal }));
    const initial = await b.next();
    expect(initial).toMatchObject({ change: StatusChange.INITIAL, version: BigInt(version) });
    // The message arrives: already part of b's state by its version, but not of what b was told.
    await env.svc.redis.publish(env.svc.store.channel(eventId), JSON.stringify({ v: version, ops: [[ChangeOpCode.ANNOUNCED]] }));
    const told = initial.announcement ? initial : await b.next();
    expect(told.announcement).toMatchObject({ messageKo: "매진", messageEn: "Sold out" });
    abort.abort();
  });

  // (Not on the shared test cluster: its other files fail masters over, and every topology change makes watchers re-read, as it must.)
  it.skipIf(ON_CLUSTER)("a storm of 300 cancels read from Redis at once makes no watcher re-read Redis: a pushed watcher keeps all that one read brings", async () => {
    const ahead = Array.from({ length: 300 }, (_, i) => `gone-${i}`);
    const { eventId, tickets } = await setup(1, ["seated", ...ahead, "w"]);
    const abort = new AbortController();
    const w = reader(client.watchStatus({ eventId, userId: "w", ticket: tickets.get("w") }, { signal: abort.signal }));
    expect(await w.next()).toMatchObject({ change: StatusChange.INITIAL, position: 301 });
    // The most changes the hub told in one go, before anyone could apply any (a probe of its own).
    let most = 0;
    let told = 0;
    const stopProbe = await env.svc.hub.watch(eventId, "probe", () => {
      if (told++ === 0) queueMicrotask(() => ((most = Math.max(most, told)), (told = 0)));
    });
    // Every status read goes through the store: counted from here.
    let reads = 0;
    const { store } = env.svc;
    const { status } = store;
    store.status = (...args) => (reads++, status.apply(store, args));
    try {
      // The 300 scripts go to Redis in one write (on the next turn of the event loop), and this
      // process stays busy while Redis runs them: their 300 messages wait in the subscriber's
      // socket and come in one read, handled in one go (as on a loaded server).
      const cancels = Promise.all(ahead.map((userId) => store.cancel(eventId, userId, undefined)));
      await new Promise((resolve) => setImmediate(resolve));
      const busyUntil = Date.now() + 500;
      while (Date.now() < busyUntil);
      await cancels;
      let last = 301;
      while (last > 1) last = (await w.next()).position;
      // The first told at once, then two runs of 128 held: more than a read watcher keeps (256).
      expect(most).toBeGreaterThan(256);
      expect(reads).toBe(0);
    } finally {
      store.status = status;
      stopProbe();
      abort.abort();
    }
  });

  it.skipIf(ON_CLUSTER)("a process too busy to read Redis's answer before its timeout passes still takes the event's subscription (no UNAVAILABLE for a burst of new watches)", async () => {
    const { eventId } = await setup(1, ["a"]);
    // The subscription goes out, then this process is busy past the timeout (1 s here): the
    // answer waits in the socket while the timer is already due.
    const watching = env.svc.hub.watch(eventId, "a", () => undefined);
    const busyUntil = Date.now() + 1_300;
    while (Date.now() < busyUntil);
    const stop = await watching;
    expect(env.svc.hub.watcherCount()).toBe(1);
    stop();
  });

  it("a watch that opens while changes are held reads the event's settings anew (a pause made meanwhile)", async () => {
    const { eventId, tickets } = await setup(1, ["seated", "a", "b", "c"]);
    const abort = new AbortController();
    // b's watch reads (and so caches) the event's settings; a cancel told to everyone starts a hold.
    const b = reader(client.watchStatus({ eventId, userId: "b", ticket: tickets.get("b") }, { signal: abort.signal }));
    expect(await b.next()).toMatchObject({ change: StatusChange.INITIAL, eventState: EventState.OPEN });
    await client.adminCancel({ eventId, userId: "a" }, admin);
    expect(await b.next()).toMatchObject({ change: StatusChange.POSITION, position: 1 });
    // Within the hold: the pause is held, and c's watch reads Redis (paused) and the settings.
    await client.updateEvent({ eventId, paused: true }, admin);
    const c = reader(client.watchStatus({ eventId, userId: "c", ticket: tickets.get("c") }, { signal: abort.signal }));
    expect(await c.next()).toMatchObject({ change: StatusChange.INITIAL, eventState: EventState.PAUSED });
    abort.abort();
  });

  it.each<[string, () => Transport, Record<string, string>]>([
    ["Connect", () => createConnectTransport({ baseUrl: env.svc.baseUrl, httpVersion: "1.1" }), { "connect-timeout-ms": "9999999999" }],
    ["gRPC, compressed (connect-node's path)", () => createGrpcTransport({ baseUrl: env.svc.baseUrl, sendCompression: compressionGzip, compressMinBytes: 0 }), { "grpc-timeout": "99999999H" }],
  ])("over %s, takes a deadline too far off for a timer (past 2^31-1 ms) as none: the stream stays open", async (_name, transport, headers) => {
    const { eventId, tickets } = await setup(1, ["a", "b", "c"]);
    const abort = new AbortController();
    const c = reader(createClient(TicketQueueService, transport()).watchStatus({ eventId, userId: "c", ticket: tickets.get("c") }, { headers, signal: abort.signal }));
    expect(await c.next()).toMatchObject({ change: StatusChange.INITIAL, position: 2 });
    // Node fires a timer it cannot hold at once: the stream would end here.
    await new Promise((r) => setTimeout(r, 300));
    await client.cancel({ eventId, userId: "b", ticket: tickets.get("b") });
    expect(await c.next()).toMatchObject({ change: StatusChange.POSITION, position: 1 });
    abort.abort();
  });

  it("tells a seated user their hold runs out soon, then that it expired, and ends", async () => {
    const { eventId, tickets } = await setup(1, ["a"], 2);
    const a = reader(client.watchStatus({ eventId, userId: "a", ticket: tickets.get("a") }));
    const first = await a.next();
    expect(first).toMatchObject({ change: StatusChange.INITIAL, status: ReservationStatus.RESERVED });
    expect(first.holdExpiresAt).toBeDefined();
    expect(await a.next(3000)).toMatchObject({ change: StatusChange.HOLD_EXPIRING, status: ReservationStatus.RESERVED });
    expect(await a.next(3000)).toMatchObject({ change: StatusChange.EXPIRED, status: ReservationStatus.EXPIRED });
    expect(await a.ended()).toBe(true);
  });

  it("tells of a confirm and a cancel; a cancel ends the stream", async () => {
    const { eventId, tickets } = await setup(1, ["a"], 60);
    const a = reader(client.watchStatus({ eventId, userId: "a", ticket: tickets.get("a") }));
    await a.next();
    await client.confirm({ eventId, userId: "a", ticket: tickets.get("a") });
    expect(await a.next()).toMatchObject({ change: StatusChange.CONFIRMED, status: ReservationStatus.RESERVED });
    await client.cancel({ eventId, userId: "a", ticket: tickets.get("a") });
    expect(await a.next()).toMatchObject({ change: StatusChange.CANCELLED, status: ReservationStatus.CANCELLED });
    expect(await a.ended()).toBe(true);
  });

  it("Reset ends every watcher's stream", async () => {
    const { eventId, tickets } = await setup(1, ["a", "b"]);
    const a = reader(client.watchStatus({ eventId, userId: "a", ticket: tickets.get("a") }));
    const b = reader(client.watchStatus({ eventId, userId: "b", ticket: tickets.get("b") }));
    await a.next();
    await b.next();
    await expect(client.reset({ eventId }, admin)).rejects.toSatisfy((e) => ConnectError.from(e).code === Code.FailedPrecondition);
    await client.reset({ eventId, confirm: eventId }, admin);
    expect(await a.next()).toMatchObject({ change: StatusChange.RESET, status: ReservationStatus.NOT_FOUND });
    expect(await b.next()).toMatchObject({ change: StatusChange.RESET, status: ReservationStatus.NOT_FOUND });
    expect(await a.ended()).toBe(true);
    expect(await b.ended()).toBe(true);
  });

  it("resyncs from Redis after a gap in versions, so the position stays exact", async () => {
    const { eventId, tickets } = await setup(1, ["a", "b", "c", "d", "e"]);
    const e = reader(client.watchStatus({ eventId, userId: "e", ticket: tickets.get("e") }));
    expect(await e.next()).toMatchObject({ position: 4 });
    // Changes the watcher cannot see: a user removed by hand and the version bumped.
    const [meta = "", , waiting = ""] = eventKeys(env.svc.prefix, eventId);
    await env.svc.redis.zrem(waiting, "b");
    await env.svc.redis.hincrby(meta, "version", 3);
    await client.cancel({ eventId, userId: "c", ticket: tickets.get("c") });
    // Applying only the visible change would say 3; the resync knows it is 2.
    expect(await e.next()).toMatchObject({ change: StatusChange.POSITION, position: 2 });
  });

  it("resyncs after a gap that follows joins the watcher was not given, and takes a repeated message as nothing new", async () => {
    const { eventId, tickets } = await setup(1, ["a", "b", "c", "d", "e"]);
    const e = reader(client.watchStatus({ eventId, userId: "e", ticket: tickets.get("e") }));
    expect(await e.next()).toMatchObject({ position: 4 });
    // Two joins behind e (not e's to see), then changes nobody sees: b removed by hand, the version bumped.
    await client.reserve({ eventId, userId: "f" });
    await client.reserve({ eventId, userId: "g" });
    const [meta = "", , waiting = ""] = eventKeys(env.svc.prefix, eventId);
    await env.svc.redis.zrem(waiting, "b");
    await env.svc.redis.hincrby(meta, "version", 3);
    await client.cancel({ eventId, userId: "c", ticket: tickets.get("c") });
    expect(await e.next()).toMatchObject({ change: StatusChange.POSITION, position: 2 });

    // The last message again (as a second subscription would bring it): the run of versions the hub
    // saw stays whole (a broken one would send every watcher behind it back to Redis), and nothing moves.
    const version = Number(await env.svc.redis.hget(meta, "version"));
    await client.reserve({ eventId, userId: "h" });
    for (let i = 0; i < 100 && env.svc.hub.seen(eventId)?.last !== version + 1; i++) await new Promise((r) => setTimeout(r, 10));
    const seen = env.svc.hub.seen(eventId);
    expect(seen).toEqual({ since: version, last: version + 1 });
    const heard: unknown[] = [];
    const stop = await env.svc.hub.watch(eventId, "someone", (m) => heard.push(m));
    await env.svc.redis.publish(env.svc.store.channel(eventId), JSON.stringify({ v: version, ops: [["L", 2, "c"]] }));
    for (let i = 0; i < 100 && heard.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    stop();
    expect(heard).toHaveLength(1);
    expect(env.svc.hub.seen(eventId)).toEqual(seen);
    await client.cancel({ eventId, userId: "d", ticket: tickets.get("d") });
    expect(await e.next()).toMatchObject({ change: StatusChange.POSITION, position: 1, version: BigInt(version + 2) });
  });

  it("one user's several watches (tabs) each hear their changes, and one that leaves leaves the others watching", async () => {
    const { eventId, tickets } = await setup(1, ["a", "b", "c"]);
    // (this file's other tests may leave streams open: counted from here)
    const before = env.svc.hub.watcherCount();
    const tabs = [1, 2, 3].map(() => {
      const leave = new AbortController();
      return { leave, stream: reader(client.watchStatus({ eventId, userId: "c", ticket: tickets.get("c") }, { signal: leave.signal })) };
    });
    for (const tab of tabs) expect(await tab.stream.next()).toMatchObject({ position: 2 });
    expect(await until(() => env.svc.hub.watcherCount() >= before + 3)).toBe(true);
    tabs[1]?.leave.abort();
    expect(await until(() => env.svc.hub.watcherCount() <= before + 2)).toBe(true);
    await client.cancel({ eventId, userId: "b", ticket: tickets.get("b") });
    for (const tab of [tabs[0], tabs[2]]) expect(await tab?.stream.next()).toMatchObject({ change: StatusChange.POSITION, position: 1 });
    tabs[0]?.leave.abort();
    expect(await until(() => env.svc.hub.watcherCount() <= before + 1)).toBe(true);
    await client.cancel({ eventId, userId: "a", ticket: tickets.get("a") });
    expect(await tabs[2]?.stream.next()).toMatchObject({ change: StatusChange.PROMOTED });
    tabs[2]?.leave.abort();
    expect(await until(() => env.svc.hub.watcherCount() <= before)).toBe(true);
  });

  it("takes junk published on an event's channel (plain or sharded) as a reason to re-read, never a crash", async () => {
    const { eventId, tickets } = await setup(1, ["a", "b", "c"]);
    const c = reader(client.watchStatus({ eventId, userId: "c", ticket: tickets.get("c") }));
    expect(await c.next()).toMatchObject({ position: 2 });
    const channel = env.svc.store.channel(eventId);
    for (const junk of ["{}", "not json", '{"v":1,"ops":5}', '{"v":"x","ops":[]}', '{"v":99,"ops":[null]}', "null", "[]"]) {
      await env.svc.redis.publish(channel, junk);
      await env.svc.redis.spublish(channel, junk);
    }
    // The watcher still follows the line: the next real change arrives, exact.
    await client.cancel({ eventId, userId: "b", ticket: tickets.get("b") });
    expect(await c.next()).toMatchObject({ change: StatusChange.POSITION, position: 1 });
  });

  it("tells watchers when the event closes", async () => {
    const { w } = await closingSoon();
    expect(await w.next()).toMatchObject({ eventState: EventState.OPEN });
    expect(await w.next(3000)).toMatchObject({ change: StatusChange.EVENT_CLOSED, eventState: EventState.CLOSED, status: ReservationStatus.QUEUED });
  });

  it("an update no change brought (the event closing) carries the event's version, other users' joins counted", async () => {
    const { eventId, w } = await closingSoon();
    const first = await w.next();
    await client.reserve({ eventId, userId: "c" });
    await client.reserve({ eventId, userId: "d" });
    expect(await w.next(3000)).toMatchObject({ change: StatusChange.EVENT_CLOSED, version: (first?.version ?? 0n) + 2n });
  });

  it("needs the user's own ticket", async () => {
    const { eventId, tickets } = await setup(1, ["a", "b"]);
    const denied = async (ticket: string | undefined, userId = "a"): Promise<Code | "ok"> => {
      try {
        for await (const message of client.watchStatus({ eventId, userId, ticket })) if (message) break;
        return "ok";
      } catch (err: unknown) {
        return ConnectError.from(err).code;
      }
    };
    expect(await denied(undefined)).toBe(Code.Unauthenticated);
    expect(await denied("forged")).toBe(Code.Unauthenticated);
    expect(await denied(tickets.get("b"))).toBe(Code.PermissionDenied);
  });
});

describe("WatchStatus as Server-Sent Events", () => {
  it("streams status events with the version as id, and ends after a cancel", async () => {
    const { eventId, tickets } = await setup(1, ["a", "b", "c"]);
    const url = `${env.svc.baseUrl}/v1/events/${eventId}/watch?user_id=c&ticket=${tickets.get("c") ?? ""}`;
    const res = await fetch(url, { headers: { accept: "text/event-stream" } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    const body = res.body?.getReader();
    let text = "";
    const waitFor = async (pattern: RegExp): Promise<void> => {
      while (!pattern.test(text)) {
        const chunk = await body?.read();
        if (!chunk || chunk.done) throw new Error(`stream ended before ${pattern}; got ${text}`);
        text += new TextDecoder().decode(chunk.value);
      }
    };
    await waitFor(/event: status\ndata: .*"position":2/);
    expect(text).toMatch(/^id: \d+\nevent: status\ndata: \{"version":"\d+","change":"STATUS_CHANGE_INITIAL","user_id":"c"/);
    await client.cancel({ eventId, userId: "b", ticket: tickets.get("b") });
    await waitFor(/"change":"STATUS_CHANGE_POSITION".*"position":1/);
    await client.cancel({ eventId, userId: "c", ticket: tickets.get("c") });
    await waitFor(/"change":"STATUS_CHANGE_CANCELLED"[^\n]*\n\nevent: end\n/);
    expect((await body?.read())?.done).toBe(true);
  });

  it("answers a bad ticket with HTTP 401 and a wrong one with 403, before streaming", async () => {
    const { eventId, tickets } = await setup(1, ["a", "b"]);
    const bad = await fetch(`${env.svc.baseUrl}/v1/events/${eventId}/watch?user_id=a&ticket=nope`);
    expect(bad.status).toBe(401);
    expect(await bad.json()).toMatchObject({ code: "unauthenticated" });
    const wrong = await fetch(`${env.svc.baseUrl}/v1/events/${eventId}/watch?user_id=a&ticket=${tickets.get("b") ?? ""}`);
    expect(wrong.status).toBe(403);
    expect((await fetch(`${env.svc.baseUrl}/v1/events/nope/watch?user_id=a&ticket=${tickets.get("b") ?? ""}`)).status).toBe(403);
  });
});

describe("WatchEvent", () => {
  it("needs the admin token", async () => {
    await expect(async () => {
      for await (const m of client.watchEvent({ eventId: "default" })) if (m) break;
    }).rejects.toSatisfy((e) => ConnectError.from(e).code === Code.Unauthenticated);
  });

  it("streams counts each second with joins and promotions per second, and a resumable feed", async () => {
    const { eventId, tickets } = await setup(1, []);
    const abort = new AbortController();
    const w = reader(client.watchEvent({ eventId }, { ...admin, signal: abort.signal }));
    const first = await w.next();
    expect(first.event?.counts).toMatchObject({ reserved: 0, waiting: 0 });
    const start = first.cursor;
    for (const userId of ["a", "b", "c"]) tickets.set(userId, (await client.reserve({ eventId, userId })).ticket);
    await client.cancel({ eventId, userId: "a", ticket: tickets.get("a") });
    const seen: WatchEventResponse[] = [];
    while (!seen.some((m) => m.feed.length > 0)) seen.push(await w.next(3000));
    const withFeed = seen.find((m) => m.feed.length > 0);
    expect(withFeed?.feed.map((f) => [f.change, f.userId])).toEqual([
      [SeatChange.CANCELLED, "a"],
      [SeatChange.PROMOTED, "b"],
    ]);
    expect(seen.some((m) => m.joinsPerSecond >= 1)).toBe(true);
    expect(seen.some((m) => m.promotionsPerSecond >= 1)).toBe(true);
    expect(seen.at(-1)?.event?.counts).toMatchObject({ reserved: 1, waiting: 1, joinedTotal: 3, promotedTotal: 1, cancelledTotal: 1 });
    abort.abort();

    // The booking system resumes from a cursor and gets exactly what followed it.
    const again = reader(client.watchEvent({ eventId, cursor: start }, admin));
    expect((await again.next()).feed.map((f) => f.userId)).toEqual(["a", "b"]);
    const fromCursor = reader(client.watchEvent({ eventId, cursor: withFeed?.feed[0]?.id ?? "" }, admin));
    expect((await fromCursor.next()).feed.map((f) => f.userId)).toEqual(["b"]);
  });
});
