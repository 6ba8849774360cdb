import { setMaxListeners } from "node:events";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { beforeAll, describe, expect, it } from "vitest";
import { DrawState, ReservationStatus, StatusChange, TicketQueueService, type WatchStatusResponse } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { drawValueOf } from "../src/queue/draw.js";
import { TEST_ADMIN_TOKEN, useTestService } from "./helpers/service.js";
import { until } from "./helpers/wait.js";

// The opening as an operator and travellers see it, through the real service:
// REST joins before the opening, live watchers over gRPC and gRPC-web, the
// sweepers' draw, the published list, and the outside verifier.
const env = useTestService();
let client: ReturnType<typeof createClient<typeof TicketQueueService>>;
const admin = { headers: { "x-token": TEST_ADMIN_TOKEN } };
beforeAll(() => {
  client = createClient(TicketQueueService, createGrpcTransport({ baseUrl: env.svc.baseUrl }));
});

async function rest(method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(env.svc.baseUrl + path, { method, headers: { "content-type": "application/json", "x-token": TEST_ADMIN_TOKEN }, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

const claimsOf = (ticket: string): Record<string, unknown> => JSON.parse(Buffer.from(ticket.split(".")[1] ?? "", "base64url").toString()) as Record<string, unknown>;

describe("the opening", () => {
  it("pre-queues early joins, draws them at opens_at in the published order, tells watchers, and verifies from outside", async () => {
    // Far enough off for the 300 joins and 20 watchers below to come before it on a loaded
    // 2-core CI machine with a Redis Cluster (2.5 s was missed there twice).
    const opensAt = new Date(Date.now() + 6000);
    const created = await rest("POST", "/v1/events", { event_id: "chuseok", capacity: 5, opens_at: opensAt.toISOString() });
    expect(created.status).toBe(200);
    const commitment = (created.json["event"] as { draw: { commitment: string } }).draw.commitment;
    expect(commitment).toMatch(/^[0-9a-f]{64}$/);

    const users = Array.from({ length: 300 }, (_, i) => `early-${i}`);
    const joins = await Promise.all(users.map((user_id) => rest("POST", "/v1/events/chuseok/reserve", { user_id })));
    const tickets = new Map<string, string>();
    for (const [i, j] of joins.entries()) {
      expect(j.json).toMatchObject({ status: "RESERVATION_STATUS_PREQUEUED", position: 0, opens_at: opensAt.toISOString(), drawn_place: 0 });
      tickets.set(users[i] ?? "", String(j.json["ticket"]));
      expect(claimsOf(String(j.json["ticket"]))["drw"]).toMatch(/^[0-9a-f]{32}$/);
    }
    // Before the draw the seed stays secret, to everyone.
    const before = await client.getEvent({ eventId: "chuseok" }, admin);
    expect(before.event?.draw).toMatchObject({ state: DrawState.OPEN, commitment, seed: "", finalSeed: "", entrants: 300 });

    // Watchers over gRPC and gRPC-web (HTTP/1.1), one pre-queued user each.
    const watched = users.slice(0, 20);
    const transports = [createGrpcTransport({ baseUrl: env.svc.baseUrl }), createGrpcWebTransport({ baseUrl: env.svc.baseUrl, httpVersion: "1.1" })];
    const abort = new AbortController();
    setMaxListeners(0, abort.signal); // one controller ends many calls: not a leak
    const seen = new Map<string, WatchStatusResponse[]>();
    const streams = watched.map(async (userId, i) => {
      const watcher = createClient(TicketQueueService, transports[i % 2] ?? transports[0]!);
      const got: WatchStatusResponse[] = [];
      seen.set(userId, got);
      try {
        for await (const m of watcher.watchStatus({ eventId: "chuseok", userId, ticket: tickets.get(userId) }, { signal: abort.signal })) {
          got.push(m);
          if (m.change === StatusChange.DRAWN || m.change === StatusChange.PROMOTED) return;
        }
      } catch {
        // aborted at the end
      }
    });
    await until(() => [...seen.values()].every((got) => got.length >= 1), 5000);
    for (const got of seen.values()) expect(got[0]).toMatchObject({ change: StatusChange.INITIAL, status: ReservationStatus.PREQUEUED, position: 0 });
    // From here to every watcher told: no status read per watcher, only for those seated (their holds are in Redis).
    const store = env.svc.store;
    const readStatus = store.status.bind(store);
    let statusReads = 0;
    store.status = async (...args: Parameters<typeof store.status>) => {
      statusReads++;
      return readStatus(...args);
    };

    await until(async () => (await client.getEvent({ eventId: "chuseok" })).event?.draw?.state === DrawState.DONE, 10_000);
    await Promise.race([Promise.all(streams), new Promise((r) => setTimeout(r, 5000))]);
    abort.abort();
    store.status = readStatus;
    const late = await client.reserve({ eventId: "chuseok", userId: "late" });
    expect(late).toMatchObject({ status: ReservationStatus.QUEUED, position: 300 - 5 + 1 });
    const draw = (await client.getEvent({ eventId: "chuseok" })).event?.draw;
    expect(draw).toMatchObject({ state: DrawState.DONE, entrants: 300, left: 0, drawn: 300 });

    // The order: the travellers' own values, ranked, are the line.
    const ranked = users.map((u) => ({ u, value: drawValueOf(draw?.finalSeed ?? "", String(claimsOf(tickets.get(u) ?? "")["drw"])) })).sort((a, b) => a.value - b.value);
    for (const [i, { u }] of ranked.entries()) {
      const s = await client.getStatus({ eventId: "chuseok", userId: u });
      if (i < 5) expect(s.status).toBe(ReservationStatus.RESERVED);
      else expect(s).toMatchObject({ status: ReservationStatus.QUEUED, position: i + 1 - 5, drawnPlace: i + 1 });
    }
    // The order is not the join order.
    expect(ranked.map((r) => r.u)).not.toEqual(users);

    // Every watcher was told, without a reload: its drawn place, or its seat; only the seated read Redis.
    const seatedWatchers = watched.filter((u) => ranked.findIndex((r) => r.u === u) < 5).length;
    expect(statusReads).toBeLessThanOrEqual(seatedWatchers);
    for (const [userId, got] of seen) {
      const place = ranked.findIndex((r) => r.u === userId) + 1;
      const last = got.at(-1);
      if (place <= 5) expect(last, userId).toMatchObject({ change: StatusChange.PROMOTED, status: ReservationStatus.RESERVED, drawnPlace: place });
      else expect(last, userId).toMatchObject({ change: StatusChange.DRAWN, status: ReservationStatus.QUEUED, position: place - 5, drawnPlace: place });
    }

    // The list, paged, over REST.
    const page = await rest("GET", "/v1/events/chuseok/draw/values?page_size=120");
    expect(page.json).toMatchObject({ total: 300, next_page_token: "120" });
    expect((page.json["values"] as string[]).length).toBe(120);
    expect((await rest("GET", "/v1/events/chuseok/draw/values?page_token=abc")).status).toBe(400);
    expect((await rest("GET", "/v1/events/chuseok/draw/values?page_size=10001")).status).toBe(400);
    // A number in a URL is written in decimal digits (proto JSON alone would take these).
    for (const size of ["0x10", "1e2", "%2010", "12.0", ""]) {
      const odd = await rest("GET", `/v1/events/chuseok/draw/values?page_size=${size}`);
      expect(odd.status, size).toBe(400);
      expect(odd.json["message"], size).toBe("page_size must be a whole number in decimal digits");
    }
    expect((await rest("GET", "/v1/events/nope/draw/values")).status).toBe(404);

    // The outside verifier agrees, and finds a traveller's place.
    const traveller = ranked[41]?.u ?? "";
    const { stdout } = await promisify(execFile)("node", ["scripts/verify-draw.mjs", env.svc.baseUrl, "chuseok", tickets.get(traveller) ?? ""]);
    expect(stdout).toContain("your drawn place: 42 of 300");
    expect(stdout).toContain("the draw checks out");
    expect(stdout).not.toContain("FAIL");
  }, 30_000);
});

describe("the pre-queue's settings", () => {
  it("refuses what cannot work, clearly", async () => {
    const soon = new Date(Date.now() + 60_000).toISOString();
    const later = new Date(Date.now() + 120_000).toISOString();
    const refused = async (method: string, path: string, body: unknown): Promise<string> => {
      const r = await rest(method, path, body);
      expect(r.status, JSON.stringify(r.json)).toBe(400);
      return String(r.json["message"]);
    };
    expect(await refused("POST", "/v1/events", { event_id: "s1", capacity: 1, prequeue_opens_at: soon })).toContain("needs an opens_at");
    expect(await refused("POST", "/v1/events", { event_id: "s2", capacity: 1, opens_at: soon, prequeue_opens_at: later })).toContain("before opens_at");
    expect(await refused("POST", "/v1/events", { event_id: "s3", capacity: 1, opens_at: soon, draw_beacon_source: "a\nb" })).toContain("draw_beacon_source");
    expect((await rest("POST", "/v1/events", { event_id: "s4", capacity: 1, opens_at: later, prequeue_opens_at: soon })).status).toBe(200);
    expect(await refused("PATCH", "/v1/events/s4", { draw_beacon: "XYZ" })).toContain("draw_beacon");
    expect(await refused("PATCH", "/v1/events/s4", { draw_beacon: "abcd" })).toContain("draw_beacon_source");
    // Clearing opens_at (the draw is then due at once) is no contradiction with prequeue_opens_at;
    // once the draw is due, the opening no longer moves. (With a beacon announced the draw
    // waits for it: otherwise the sweepers may finish an empty draw first, and a done draw
    // leaves opens_at an ordinary setting again.)
    expect((await rest("POST", "/v1/events", { event_id: "s5", capacity: 1, opens_at: later, prequeue_opens_at: soon, draw_beacon_source: "drand round 1" })).status).toBe(200);
    expect((await rest("PATCH", "/v1/events/s5", { clear_opens_at: true })).status).toBe(200);
    expect(await refused("PATCH", "/v1/events/s5", { opens_at: later })).toContain("draw is due or under way");
  });
});
