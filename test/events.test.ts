import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { createLocalJWKSet, importJWK, jwtVerify, SignJWT, type JWK } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { EventState, ReservationStatus, TicketQueueService } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { ticketKeyKey } from "../src/queue/keys.js";
import { TEST_ADMIN_TOKEN, useTestService } from "./helpers/service.js";

let client: ReturnType<typeof createClient<typeof TicketQueueService>>;
const admin = { headers: { "x-token": TEST_ADMIN_TOKEN } };
const code = (err: unknown): Code => ConnectError.from(err).code;

// Small hashes are one listpack that HSCAN returns whole: page the seat export for real.
const env = useTestService({ capacity: 3 }, ["--hash-max-listpack-entries", "16"]);
beforeAll(async () => {
  client = createClient(TicketQueueService, createGrpcTransport({ baseUrl: env.svc.baseUrl }));
});

async function rest(method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(env.svc.baseUrl + path, {
    method,
    headers: { "content-type": "application/json", ...(token ? { "x-token": token } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

describe("events over REST", () => {
  it("creates trains with their own capacities, reserves on each, and counts live", async () => {
    expect((await rest("POST", "/v1/events", { event_id: "ktx-101", name: "KTX 101 Seoul→Busan", capacity: 2 })).status).toBe(401);
    const created = await rest("POST", "/v1/events", { event_id: "ktx-101", name: "KTX 101 Seoul→Busan", capacity: 2 }, TEST_ADMIN_TOKEN);
    expect(created.status).toBe(200);
    expect(created.json["event"]).toMatchObject({ event_id: "ktx-101", capacity: 2, hold_seconds: 0, state: "EVENT_STATE_OPEN", paused: false });
    expect((await rest("POST", "/v1/events", { event_id: "ktx-101", capacity: 2 }, TEST_ADMIN_TOKEN)).status).toBe(409);
    expect((await rest("POST", "/v1/events", { event_id: "srt-7", capacity: 1 }, TEST_ADMIN_TOKEN)).status).toBe(200);
    expect((await rest("POST", "/v1/events", { event_id: "bad{id}", capacity: 1 }, TEST_ADMIN_TOKEN)).status).toBe(400);
    expect((await rest("POST", "/v1/events", { event_id: "zero", capacity: 0 }, TEST_ADMIN_TOKEN)).status).toBe(400);

    for (const u of ["a", "b", "c"]) await rest("POST", "/v1/events/ktx-101/reserve", { user_id: u });
    for (const u of ["a", "b"]) await rest("POST", "/v1/events/srt-7/reserve", { user_id: u });
    expect((await rest("GET", "/v1/events/ktx-101/status/c")).json).toMatchObject({ status: "RESERVATION_STATUS_QUEUED", position: 1, event_id: "ktx-101" });
    expect((await rest("GET", "/v1/events/srt-7/status/b")).json).toMatchObject({ status: "RESERVATION_STATUS_QUEUED", position: 1 });
    expect((await rest("GET", "/v1/events/nope/status/b")).status).toBe(404);
    expect((await rest("POST", "/v1/events/nope/reserve", {})).status).toBe(404);

    const ktx = (await rest("GET", "/v1/events/ktx-101")).json["event"];
    expect(ktx).toMatchObject({ counts: { reserved: 2, held: 0, waiting: 1, joined_total: 3, promoted_total: 0, cancelled_total: 0, expired_total: 0 } });
    const list = (await rest("GET", "/v1/events")).json["events"] as { event_id: string }[];
    expect(list.map((e) => e.event_id)).toEqual(["default", "ktx-101", "srt-7"]);
  });

  it("raises capacity with promotion, pauses and resumes with PATCH", async () => {
    await rest("POST", "/v1/events", { event_id: "itx-1", capacity: 1 }, TEST_ADMIN_TOKEN);
    for (const u of ["a", "b", "c"]) await rest("POST", "/v1/events/itx-1/reserve", { user_id: u });
    const raised = await rest("PATCH", "/v1/events/itx-1", { capacity: 2 }, TEST_ADMIN_TOKEN);
    expect(raised.json).toMatchObject({ promoted_user_ids: ["b"], event: { capacity: 2, counts: { reserved: 2, waiting: 1 } } });
    expect((await rest("GET", "/v1/events/itx-1/status/b")).json).toMatchObject({ status: "RESERVATION_STATUS_RESERVED", promoted: true });

    expect((await rest("PATCH", "/v1/events/itx-1", { paused: true }, TEST_ADMIN_TOKEN)).json).toMatchObject({ event: { paused: true, state: "EVENT_STATE_PAUSED" } });
    const refused = await rest("POST", "/v1/events/itx-1/reserve", { user_id: "d" });
    expect(refused.status).toBe(400);
    expect(refused.json).toMatchObject({ code: "failed_precondition" });
    expect(String(refused.json["message"])).toContain("paused");
    await rest("PATCH", "/v1/events/itx-1", { paused: false }, TEST_ADMIN_TOKEN);
    expect((await rest("POST", "/v1/events/itx-1/reserve", { user_id: "d" })).json).toMatchObject({ status: "RESERVATION_STATUS_QUEUED", position: 2 });
  });

  it("says when a scheduled event's pre-queue opens, and pre-queues from then until the opening", async () => {
    const opensAt = new Date(Date.now() + 3_600_000).toISOString();
    const prequeueOpensAt = new Date(Date.now() + 1_800_000).toISOString();
    const created = await rest("POST", "/v1/events", { event_id: "later", capacity: 5, opens_at: opensAt, prequeue_opens_at: prequeueOpensAt }, TEST_ADMIN_TOKEN);
    expect(created.json["event"]).toMatchObject({ state: "EVENT_STATE_SCHEDULED", prequeue_opens_at: prequeueOpensAt, draw: { state: "DRAW_STATE_OPEN" } });
    const refused = await rest("POST", "/v1/events/later/reserve", {});
    expect(refused.status).toBe(400);
    expect(String(refused.json["message"])).toContain(`opens at ${prequeueOpensAt.slice(0, 19)}`);
    await rest("POST", "/v1/events", { event_id: "later-2", capacity: 5, opens_at: opensAt }, TEST_ADMIN_TOKEN);
    const entered = await rest("POST", "/v1/events/later-2/reserve", { user_id: "kim" });
    expect(entered.json).toMatchObject({ status: "RESERVATION_STATUS_PREQUEUED", position: 0, opens_at: opensAt });
  });
});

describe("max_waiting", () => {
  it("bounds the waiting per event: past it Reserve is 429 and writes nothing; those known keep their place; UpdateEvent moves it", async () => {
    const created = await rest("POST", "/v1/events", { event_id: "bounded", capacity: 1, max_waiting: 2 }, TEST_ADMIN_TOKEN);
    expect(created.json["event"]).toMatchObject({ max_waiting: 2 });
    for (const user of ["seated", "w1", "w2"]) expect((await rest("POST", "/v1/events/bounded/reserve", { user_id: user })).status).toBe(200);
    const full = await rest("POST", "/v1/events/bounded/reserve", { user_id: "w3" });
    expect(full.status).toBe(429);
    expect(full.json).toMatchObject({ code: "resource_exhausted", message: "event bounded's queue is full (2 waiting): try again later" });
    expect((await rest("POST", "/v1/events/bounded/reserve", { user_id: "w2" })).json).toMatchObject({ already_in_queue: true, position: 2 });
    const info = await client.getEvent({ eventId: "bounded" });
    expect(info.event?.counts).toMatchObject({ waiting: 2, joinedTotal: 3 });
    await client.updateEvent({ eventId: "bounded", maxWaiting: 0 }, { headers: { "x-token": TEST_ADMIN_TOKEN } });
    expect((await rest("POST", "/v1/events/bounded/reserve", { user_id: "w3" })).json).toMatchObject({ status: "RESERVATION_STATUS_QUEUED", position: 3 });
    expect((await rest("PATCH", "/v1/events/bounded", { max_waiting: 2_000_000_000 }, TEST_ADMIN_TOKEN)).status).toBe(400);
  });
});

describe("tickets", () => {
  it("cancel needs the user's own ticket: forged or missing 401, another user's or event's 403", async () => {
    await client.createEvent({ eventId: "t1", capacity: 1 }, admin);
    await client.createEvent({ eventId: "t2", capacity: 1 }, admin);
    const a = await client.reserve({ eventId: "t1", userId: "a" });
    const b = await client.reserve({ eventId: "t1", userId: "b" });
    const a2 = await client.reserve({ eventId: "t2", userId: "a" });
    expect((await client.reserve({ eventId: "t1", userId: "a" })).ticket).toBe("");

    await expect(client.cancel({ eventId: "t1", userId: "a" })).rejects.toSatisfy((e) => code(e) === Code.Unauthenticated);
    await expect(client.cancel({ eventId: "t1", userId: "a", ticket: "not.a.jwt" })).rejects.toSatisfy((e) => code(e) === Code.Unauthenticated);
    const [h = "", p = ""] = a.ticket.split(".");
    await expect(client.cancel({ eventId: "t1", userId: "a", ticket: `${h}.${p}.${"A".repeat(86)}` })).rejects.toSatisfy((e) => code(e) === Code.Unauthenticated);
    await expect(client.cancel({ eventId: "t1", userId: "a", ticket: b.ticket })).rejects.toSatisfy((e) => code(e) === Code.PermissionDenied);
    await expect(client.cancel({ eventId: "t1", userId: "a", ticket: a2.ticket })).rejects.toSatisfy((e) => code(e) === Code.PermissionDenied);

    const cancelled = await client.cancel({ eventId: "t1", userId: "a", ticket: a.ticket });
    expect(cancelled).toMatchObject({ status: ReservationStatus.CANCELLED, alreadyCancelled: false, promotedUserIds: ["b"] });
    expect(await client.cancel({ eventId: "t1", userId: "a", ticket: a.ticket })).toMatchObject({ status: ReservationStatus.CANCELLED, alreadyCancelled: true });
    // REST: 401 and 403 with the same mapping.
    expect((await rest("POST", "/v1/events/t1/cancel", { user_id: "b", ticket: "x" })).status).toBe(401);
    expect((await rest("POST", "/v1/events/t1/cancel", { user_id: "b", ticket: a.ticket })).status).toBe(403);
  });

  it("an expired ticket is refused with 401", async () => {
    await client.createEvent({ eventId: "t3", capacity: 1 }, admin);
    await client.reserve({ eventId: "t3", userId: "x" });
    const jwk = JSON.parse((await env.svc.redis.get(ticketKeyKey(env.svc.prefix))) ?? "{}") as JWK;
    const key = await importJWK(jwk, "EdDSA");
    const expired = await new SignJWT({ evt: "t3", seq: 1 })
      .setProtectedHeader({ alg: "EdDSA" })
      .setSubject("x")
      .setAudience("ticketqueue:ticket")
      .setIssuedAt(Math.floor(Date.now() / 1000) - 7200)
      .setExpirationTime(Math.floor(Date.now() / 1000) - 3600)
      .sign(key);
    await expect(client.cancel({ eventId: "t3", userId: "x", ticket: expired })).rejects.toSatisfy(
      (e) => code(e) === Code.Unauthenticated && /expired/.test(String(e)),
    );
  });

  it("are verifiable by anyone with the JWKS", async () => {
    const r = await client.reserve({ eventId: "", userId: "jwks-user" });
    const jwks = (await (await fetch(`${env.svc.baseUrl}/.well-known/jwks.json`)).json()) as { keys: JWK[] };
    expect(jwks.keys[0]).toMatchObject({ kty: "OKP", crv: "Ed25519", alg: "EdDSA", use: "sig" });
    const { payload, protectedHeader } = await jwtVerify(r.ticket, createLocalJWKSet(jwks), { audience: "ticketqueue:ticket" });
    expect(protectedHeader).toEqual({ alg: "EdDSA", kid: jwks.keys[0]?.kid, typ: "JWT" });
    expect(payload).toMatchObject({ sub: "jwks-user", evt: "default", aud: "ticketqueue:ticket", seq: expect.any(Number) });
    expect(payload.exp! - payload.iat!).toBe(3600);
    expect(Math.abs(payload.iat! - Date.now() / 1000)).toBeLessThan(5);
  });

  it("AdminCancel needs the admin token, not a ticket", async () => {
    await client.reserve({ userId: "support-case" });
    await expect(client.adminCancel({ userId: "support-case" })).rejects.toSatisfy((e) => code(e) === Code.Unauthenticated);
    expect(await client.adminCancel({ userId: "support-case" }, admin)).toMatchObject({ status: ReservationStatus.CANCELLED });
  });
});

describe("purchase holds", () => {
  it("an unconfirmed hold expires within a second and the seat passes on; a confirmed seat stays", async () => {
    await client.createEvent({ eventId: "hold", capacity: 2, holdSeconds: 1 }, admin);
    const a = await client.reserve({ eventId: "hold", userId: "a" });
    const b = await client.reserve({ eventId: "hold", userId: "b" });
    await client.reserve({ eventId: "hold", userId: "c" });
    expect(a.holdExpiresAt).toBeDefined();
    expect(await client.confirm({ eventId: "hold", userId: "b", ticket: b.ticket })).toMatchObject({ status: ReservationStatus.RESERVED, alreadyConfirmed: false });
    const expiresAt = Number(a.holdExpiresAt?.seconds ?? 0n) * 1000 + (a.holdExpiresAt?.nanos ?? 0) / 1e6;
    // Poll: the sweeper must have acted within a second of the hold's end.
    let expiredSeenAt = 0;
    while (Date.now() < expiresAt + 3000) {
      const s = await client.getStatus({ eventId: "hold", userId: "a" });
      if (s.status === ReservationStatus.EXPIRED) {
        expiredSeenAt = Date.now();
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(expiredSeenAt).toBeGreaterThan(0);
    expect(expiredSeenAt - expiresAt).toBeLessThan(1000);
    expect(await client.getStatus({ eventId: "hold", userId: "c" })).toMatchObject({ status: ReservationStatus.RESERVED, promoted: true });
    expect(await client.getStatus({ eventId: "hold", userId: "b" })).toMatchObject({ status: ReservationStatus.RESERVED });
    await expect(client.confirm({ eventId: "hold", userId: "a", ticket: a.ticket })).rejects.toSatisfy((e) => code(e) === Code.FailedPrecondition);
    const event = (await client.getEvent({ eventId: "hold" })).event;
    expect(event?.counts).toMatchObject({ reserved: 2, held: 1, waiting: 0, expiredTotal: 1, promotedTotal: 1 });
    expect(event?.state).toBe(EventState.OPEN);
    // Reserve after expiry joins again at the back.
    expect(await client.reserve({ eventId: "hold", userId: "a" })).toMatchObject({ status: ReservationStatus.QUEUED, position: 1 });
  });
});

describe("Reset of a named event", () => {
  it("needs confirm set to the event's id; the old API's reset of the default event needs none", async () => {
    await rest("POST", "/v1/events", { event_id: "confirm-me", capacity: 1 }, TEST_ADMIN_TOKEN);
    await rest("POST", "/v1/events/confirm-me/reserve", { user_id: "a" });
    const refused = await rest("POST", "/v1/events/confirm-me/reset", {}, TEST_ADMIN_TOKEN);
    expect(refused.status).toBe(400);
    expect(refused.json).toMatchObject({ code: "failed_precondition" });
    expect((await rest("POST", "/v1/events/confirm-me/reset", { confirm: "other" }, TEST_ADMIN_TOKEN)).status).toBe(400);
    expect((await rest("GET", "/v1/events/confirm-me/status/a")).json).toMatchObject({ status: "RESERVATION_STATUS_RESERVED" });
    expect((await rest("POST", "/v1/events/confirm-me/reset", { confirm: "confirm-me" }, TEST_ADMIN_TOKEN)).json).toMatchObject({ cleared_reserved: 1 });
    expect((await rest("POST", "/admin/reset", undefined, TEST_ADMIN_TOKEN)).status).toBe(200);
  });
});

describe("seat holders (the support desk's export)", () => {
  it("pages every seat holder, with entries and holds, to admins only", async () => {
    await client.createEvent({ eventId: "export", capacity: 150, holdSeconds: 600 }, admin);
    const tickets: string[] = [];
    for (let i = 0; i < 160; i++) tickets.push((await client.reserve({ eventId: "export", userId: `rider-${i}` })).ticket);
    await client.confirm({ eventId: "export", userId: "rider-1", ticket: tickets[1] ?? "" });

    await expect(client.listSeatHolders({ eventId: "export" })).rejects.toSatisfy((e) => code(e) === Code.Unauthenticated);
    const seen = new Map<string, { entry: bigint; held: boolean }>();
    let pageToken = "";
    let pages = 0;
    do {
      const page = await client.listSeatHolders({ eventId: "export", pageSize: 20, pageToken }, admin);
      for (const s of page.seatHolders) seen.set(s.userId, { entry: s.entry, held: s.holdExpiresAt !== undefined });
      pageToken = page.nextPageToken;
      pages++;
    } while (pageToken !== "" && pages < 1000);
    expect(pageToken).toBe("");
    expect(pages).toBeGreaterThan(1);
    expect([...seen.keys()].sort()).toEqual(Array.from({ length: 150 }, (_, i) => `rider-${i}`).sort());
    expect(seen.get("rider-0")).toEqual({ entry: 1n, held: true });
    expect(seen.get("rider-1")).toEqual({ entry: 2n, held: false });
    expect(seen.get("rider-149")?.entry).toBe(150n);

    const viaRest = await rest("GET", "/v1/events/export/seats?page_size=1000", undefined, TEST_ADMIN_TOKEN);
    expect(viaRest.status).toBe(200);
    expect(new Set((viaRest.json["seat_holders"] as { user_id: string }[]).map((s) => s.user_id)).size).toBe(150);
    expect((await rest("GET", "/v1/events/export/seats?page_token=abc", undefined, TEST_ADMIN_TOKEN)).status).toBe(400);
    expect((await rest("GET", "/v1/events/export/seats?page_size=5000", undefined, TEST_ADMIN_TOKEN)).status).toBe(400);
    expect((await rest("GET", "/v1/events/nope/seats", undefined, TEST_ADMIN_TOKEN)).status).toBe(404);
  });
});
