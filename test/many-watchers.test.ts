import { setMaxListeners } from "node:events";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { describe, expect, it } from "vitest";
import { ReservationStatus, StatusChange, TicketQueueService, type WatchStatusResponse } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { eventKeys } from "../src/queue/keys.js";
import { TEST_ADMIN_TOKEN, useTestService } from "./helpers/service.js";

// One process holds 10,000 HTTP/2 watchers and 500 SSE watchers; a change is
// fanned out from one subscription, not from a Redis read per watcher.

const admin = { headers: { "x-token": TEST_ADMIN_TOKEN } };

// A capacity test: commands may wait longer than usual while 10,000 streams start on 2 cores.
const env = useTestService({ commandTimeoutMs: 10_000 });

/** An event with one seated user and `waiting` queued users with tickets. */
async function crowd(eventId: string, waiting: number): Promise<{ users: string[]; tickets: string[] }> {
  const client = createClient(TicketQueueService, createGrpcTransport({ baseUrl: env.svc.baseUrl }));
  await client.createEvent({ eventId, capacity: 1 }, admin);
  await client.reserve({ eventId, userId: "seated" });
  const [meta = "", , waitingKey = ""] = eventKeys(env.svc.prefix, eventId);
  const users = Array.from({ length: waiting }, (_, i) => `${eventId}-user-${i}`);
  const pipeline = env.svc.redis.pipeline();
  users.forEach((u, i) => pipeline.zadd(waitingKey, i + 2, u));
  pipeline.hset(meta, "next_seq", waiting + 1);
  await pipeline.exec();
  const tickets = await Promise.all(users.map((u, i) => env.svc.tickets.issue(eventId, u, i + 2)));
  return { users, tickets };
}

async function callsOf(command: string): Promise<number> {
  const stats = await env.svc.redis.info("commandstats");
  return Number(new RegExp(`^cmdstat_${command}:calls=(\\d+)`, "m").exec(stats)?.[1] ?? 0);
}

describe("many watchers in one process", () => {
  it("10,000 concurrent HTTP/2 watchers all see a promotion move them up, from one subscription", async () => {
    const N = 10_000;
    const { users, tickets } = await crowd("big-train", N);
    // Ten connections of 1,000 streams (one connection may carry MAX_STREAMS_PER_CONNECTION, 2,048 by default);
    // like any HTTP/2 peer carrying this many streams, the client needs more than nghttp2's default 10 MB per session.
    const clients = Array.from({ length: 10 }, () => createClient(TicketQueueService, createGrpcTransport({ baseUrl: env.svc.baseUrl, nodeOptions: { maxSessionMemory: 64 } })));
    const client = clients[0]!;
    const abort = new AbortController();
    setMaxListeners(0, abort.signal); // one controller ends many calls: not a leak
    const heapBefore = process.memoryUsage().heapUsed;
    const initial: (WatchStatusResponse | undefined)[] = new Array(N);
    const second: (WatchStatusResponse | undefined)[] = new Array(N);
    let firstCount = 0;
    let secondCount = 0;
    const errors: string[] = [];
    const streams = users.map(async (userId, i) => {
      try {
        for await (const m of clients[i % 10]!.watchStatus({ eventId: "big-train", userId, ticket: tickets[i] }, { signal: abort.signal })) {
          if (!initial[i]) {
            initial[i] = m;
            firstCount++;
          } else {
            second[i] = m;
            secondCount++;
          }
        }
      } catch (err: unknown) {
        if (!abort.signal.aborted) errors.push(String(err));
      }
    });
    const deadline = Date.now() + 60_000;
    while (firstCount < N && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(errors.slice(0, 3)).toEqual([]);
    expect(firstCount).toBe(N);
    expect(initial.map((m) => m?.position)).toEqual(users.map((_, i) => i + 1));
    const heapPerWatcher = (process.memoryUsage().heapUsed - heapBefore) / N;

    await env.svc.redis.config("RESETSTAT");
    const started = performance.now();
    await client.adminCancel({ eventId: "big-train", userId: "seated" }, admin); // the seat passes to user 0
    while (secondCount < N && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const fanOutMs = performance.now() - started;
    expect(secondCount).toBe(N);
    expect(second[0]).toMatchObject({ change: StatusChange.PROMOTED, status: ReservationStatus.RESERVED });
    for (let i = 1; i < N; i++) expect(second[i]?.position).toBe(i);
    // Only the promoted watcher re-read its state from Redis.
    expect(await callsOf("zrank")).toBeLessThanOrEqual(2);
    console.log(`10,000 HTTP/2 watchers: fan-out of one promotion to all took ${fanOutMs.toFixed(0)} ms; ~${(heapPerWatcher / 1024).toFixed(1)} KiB heap per watcher (client and server in this process); ZRANK calls during fan-out: ${await callsOf("zrank")}`);
    abort.abort();
    await Promise.all(streams);
  }, 120_000);

  it("joins at the back reach only the joiner's own watchers; the next promotion (a cancel, a capacity raise) still moves the other 1,000 from the feed, without a re-read", async () => {
    const N = 1_000;
    const JOINS = 300;
    const { users, tickets } = await crowd("join-train", N);
    const client = createClient(TicketQueueService, createGrpcTransport({ baseUrl: env.svc.baseUrl, nodeOptions: { maxSessionMemory: 64 } }));
    const abort = new AbortController();
    setMaxListeners(0, abort.signal); // one controller ends many calls: not a leak
    const messages: WatchStatusResponse[][] = users.map(() => []);
    const streams = users.map(async (userId, i) => {
      try {
        for await (const m of client.watchStatus({ eventId: "join-train", userId, ticket: tickets[i] }, { signal: abort.signal })) messages[i]?.push(m);
      } catch {
        // aborted at the end
      }
    });
    const until = async (ok: () => boolean): Promise<boolean> => {
      const deadline = Date.now() + 30_000;
      while (!ok() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      return ok();
    };
    // What the process's hub hands out for a waiting user, and for one of the joiners.
    const waiting: unknown[] = [];
    const joiner: unknown[] = [];
    const stops: (() => void)[] = [];
    try {
      expect(await until(() => messages.every((m) => m.length === 1))).toBe(true);
      stops.push(await env.svc.hub.watch("join-train", users[5] ?? "", (m) => waiting.push(m)));
      stops.push(await env.svc.hub.watch("join-train", "late-7", (m) => joiner.push(m)));
      for (let i = 0; i < JOINS; i += 50) await Promise.all(Array.from({ length: 50 }, (_, k) => client.reserve({ eventId: "join-train", userId: `late-${i + k}` })));
      expect(await until(() => joiner.length === 1)).toBe(true);
      expect(joiner[0]).toMatchObject({ kind: "change", ops: [["J", "late-7"]] });

      await env.svc.redis.config("RESETSTAT");
      await client.adminCancel({ eventId: "join-train", userId: "seated" }, admin); // the seat passes to user 0
      expect(await until(() => messages.every((m) => m.length === 2))).toBe(true);
      expect(messages[0]?.[1]).toMatchObject({ change: StatusChange.PROMOTED, status: ReservationStatus.RESERVED });
      for (let i = 1; i < N; i++) expect(messages[i]?.[1]?.position).toBe(i);
      // The 1,000 knew the event before the joins and the hub saw every version since: none re-read its
      // place (the promoted one reads its seat, which takes no ZRANK; a waiting user's re-read takes two).
      expect(await callsOf("zrank")).toBe(0);
      // Of the 301 changes, the waiting user's listener was given the cancel alone.
      expect(waiting).toHaveLength(1);
      // And the update carries the event's version, the 300 joins counted.
      const joinsDone = Number(messages[1]?.[0]?.version ?? 0) + JOINS + 1;
      expect(Number(messages[1]?.[1]?.version)).toBe(joinsDone);

      // A capacity raise (a change of settings that frees seats) moves them from the feed too.
      await env.svc.redis.config("RESETSTAT");
      await client.updateEvent({ eventId: "join-train", capacity: 3 }, admin);
      expect(await until(() => messages.every((m, i) => m.length === (i === 0 ? 2 : 3)))).toBe(true);
      expect(messages[1]?.[2]).toMatchObject({ change: StatusChange.PROMOTED, status: ReservationStatus.RESERVED });
      expect(messages[2]?.[2]).toMatchObject({ change: StatusChange.PROMOTED, status: ReservationStatus.RESERVED });
      for (let i = 3; i < N; i++) expect(messages[i]?.[2]?.position).toBe(i - 2);
      expect(await callsOf("zrank")).toBe(0);
    } finally {
      for (const stop of stops) stop();
      abort.abort();
      await Promise.all(streams);
    }
  }, 60_000);

  it("500 concurrent SSE watchers all see the change", async () => {
    const N = 500;
    const { tickets, users } = await crowd("sse-train", N);
    const abort = new AbortController();
    setMaxListeners(0, abort.signal); // one controller ends many calls: not a leak
    const texts = users.map(() => "");
    const streams = users.map(async (userId, i) => {
      try {
        const res = await fetch(`${env.svc.baseUrl}/v1/events/sse-train/watch?user_id=${userId}&ticket=${tickets[i] ?? ""}`, { signal: abort.signal });
        const reader = res.body?.getReader();
        for (;;) {
          const chunk = await reader?.read();
          if (!chunk || chunk.done) break;
          texts[i] += new TextDecoder().decode(chunk.value);
        }
      } catch {
        // aborted at the end
      }
    });
    const waitUntil = async (ok: () => boolean): Promise<void> => {
      const deadline = Date.now() + 30_000;
      while (!ok() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    };
    await waitUntil(() => texts.every((t) => t.includes("STATUS_CHANGE_INITIAL")));
    expect(texts.every((t) => t.includes("STATUS_CHANGE_INITIAL"))).toBe(true);
    const client = createClient(TicketQueueService, createGrpcTransport({ baseUrl: env.svc.baseUrl }));
    await client.adminCancel({ eventId: "sse-train", userId: "seated" }, admin);
    await waitUntil(() => texts.every((t, i) => (i === 0 ? t.includes("STATUS_CHANGE_PROMOTED") : t.includes(`"position":${i}`) && t.includes("STATUS_CHANGE_POSITION"))));
    expect(texts[0]).toContain("STATUS_CHANGE_PROMOTED");
    for (let i = 1; i < N; i++) expect(texts[i]).toMatch(new RegExp(`STATUS_CHANGE_POSITION[^\\n]*"position":${i}[,}]`));
    abort.abort();
    await Promise.all(streams);
  }, 60_000);
});
