import { createServer, type Server } from "node:http";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ReservationStatus, TicketQueueService } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { userJwtVerifier } from "../src/rpc/user-identity.js";
import { ON_CLUSTER, TEST_ADMIN_TOKEN, useTestService } from "./helpers/service.js";

// Users known by their tokens (USER_JWT_*): a place belongs to whoever took it.
// The tokens are signed here, by keys this test makes, as an identity provider would.

const AUDIENCE = "ktx-web";
interface Signer {
  key: CryptoKey;
  alg: "EdDSA" | "RS256";
  kid: string;
}
let ed: Signer;
let rsa: Signer;
let publicJwks: { keys: JWK[] };

const token = (signer: Signer, claims: { sub?: string; aud?: string; exp?: number | null } = {}): Promise<string> => {
  const jwt = new SignJWT(claims.sub === undefined ? {} : { sub: claims.sub }).setProtectedHeader({ alg: signer.alg, kid: signer.kid }).setIssuedAt().setAudience(claims.aud ?? AUDIENCE);
  if (claims.exp !== null) jwt.setExpirationTime(claims.exp ?? Math.floor(Date.now() / 1000) + 300);
  return jwt.sign(signer.key);
};
const bearer = async (sub: string, signer = ed) => ({ headers: { authorization: `Bearer ${await token(signer, { sub })}` } });
const code = (err: unknown): Code => ConnectError.from(err).code;
const refused = (call: Promise<unknown>): Promise<Code> => call.then(() => { throw new Error("the call was answered"); }, code);

async function signer(alg: "EdDSA" | "RS256", kid: string): Promise<{ signer: Signer; jwk: JWK }> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { signer: { key: privateKey, alg, kid }, jwk: { ...(await exportJWK(publicKey)), kid, alg } };
}

beforeAll(async () => {
  const a = await signer("EdDSA", "ed-1");
  const b = await signer("RS256", "rsa-1");
  [ed, rsa] = [a.signer, b.signer];
  publicJwks = { keys: [a.jwk, b.jwk] };
});

const env = useTestService(async () => ({
  capacity: 1,
  commandTimeoutMs: 500,
  userJwt: userJwtVerifier({ userJwtPublicKey: JSON.stringify(publicJwks), userJwtAudience: AUDIENCE }),
  rateLimit: { perMinute: 0, trustedProxies: new Set(), serviceTokens: new Map([["booking", "booking-s3cret"]]) },
}));
const client = () => createClient(TicketQueueService, createGrpcTransport({ baseUrl: env.svc.baseUrl }));

describe("users known by their tokens", () => {
  it("Reserve needs a user token: without one 401, with one the user is the token's sub and a repeat gets a fresh ticket for the same entry", async () => {
    expect(await refused(client().reserve({ eventId: "id-1", userId: "alice" }))).toBe(Code.Unauthenticated);
    const rest = await fetch(`${env.svc.baseUrl}/reserve`, { method: "POST", body: JSON.stringify({ user_id: "alice" }) });
    expect(rest.status).toBe(401);
    await client().createEvent({ eventId: "id-1", capacity: 1 }, { headers: { "x-token": TEST_ADMIN_TOKEN } });
    const first = await client().reserve({ eventId: "id-1" }, await bearer("alice"));
    expect(first).toMatchObject({ userId: "alice", status: ReservationStatus.RESERVED });
    const second = await client().reserve({ eventId: "id-1", userId: "alice" }, await bearer("alice", rsa));
    expect(second).toMatchObject({ userId: "alice", alreadyReserved: true });
    expect(second.ticket).not.toBe("");
    // The fresh ticket is for the same entry: it cancels it.
    expect((await client().cancel({ eventId: "id-1", userId: "alice", ticket: second.ticket })).status).toBe(ReservationStatus.CANCELLED);
    // Over REST too, with the header.
    const viaRest = await fetch(`${env.svc.baseUrl}/v1/events/id-1/reserve`, { method: "POST", headers: (await bearer("dave")).headers, body: "{}" });
    expect(await viaRest.json()).toMatchObject({ user_id: "dave", status: "RESERVATION_STATUS_RESERVED" });
  });

  it("nobody can take, cancel, confirm, watch or read another's place", async () => {
    const bob = await bearer("bob");
    const { ticket } = await client().reserve({ eventId: "id-1" }, await bearer("erin"));
    expect(await refused(client().reserve({ eventId: "id-1", userId: "erin" }, bob))).toBe(Code.PermissionDenied);
    expect(await refused(client().cancel({ eventId: "id-1", userId: "erin" }, bob))).toBe(Code.PermissionDenied);
    expect(await refused(client().cancel({ eventId: "id-1", userId: "erin", ticket }, bob))).toBe(Code.PermissionDenied);
    expect(await refused(client().confirm({ eventId: "id-1", userId: "erin" }, bob))).toBe(Code.PermissionDenied);
    expect(await refused(client().getStatus({ eventId: "id-1", userId: "erin" }, bob))).toBe(Code.PermissionDenied);
    expect(await refused(client().getStatus({ eventId: "id-1", userId: "erin" }))).toBe(Code.Unauthenticated);
    expect(await refused(client().watchStatus({ eventId: "id-1", userId: "erin" }, bob)[Symbol.asyncIterator]().next())).toBe(Code.PermissionDenied);
    // Erin herself, with her token and no ticket; an operator may read her status too.
    expect((await client().getStatus({ eventId: "id-1" }, await bearer("erin"))).userId).toBe("erin");
    expect((await client().getStatus({ eventId: "id-1", userId: "erin" }, { headers: { "x-token": TEST_ADMIN_TOKEN } })).position).toBeGreaterThan(0);
    const abort = new AbortController();
    const watch = client().watchStatus({ eventId: "id-1" }, { ...(await bearer("erin")), signal: abort.signal })[Symbol.asyncIterator]();
    expect((await watch.next()).value?.userId).toBe("erin");
    abort.abort();
    await watch.return?.();
    expect((await client().cancel({ eventId: "id-1" }, await bearer("erin"))).status).toBe(ReservationStatus.CANCELLED);
  });

  it("refuses tokens that are expired, without exp, for another audience, unsigned by the keys, tickets, or with a sub over 255 bytes", async () => {
    const other = await signer("EdDSA", "ed-1");
    const { ticket } = await client().reserve({ eventId: "id-1" }, await bearer("frank"));
    const bad = [
      await token(ed, { sub: "x", exp: Math.floor(Date.now() / 1000) - 120 }),
      await token(ed, { sub: "x", exp: null }),
      await token(ed, { sub: "x", aud: "ticketqueue:admin" }),
      await token(ed, { sub: "x", aud: "another-app" }),
      await token(other.signer, { sub: "x" }),
      await token(ed, {}),
      await token(ed, { sub: "s".repeat(256) }),
      // A sub that is not a string (jose does not check its type).
      await new SignJWT({ sub: 123 } as unknown as JWTPayload).setProtectedHeader({ alg: "EdDSA", kid: "ed-1" }).setAudience(AUDIENCE).setExpirationTime("5m").sign(ed.key),
      await new SignJWT({ sub: ["kim"] } as unknown as JWTPayload).setProtectedHeader({ alg: "EdDSA", kid: "ed-1" }).setAudience(AUDIENCE).setExpirationTime("5m").sign(ed.key),
      ticket,
      "not-a-jwt",
    ];
    for (const t of bad) expect(await refused(client().reserve({ eventId: "id-1" }, { headers: { authorization: `Bearer ${t}` } })), t).toBe(Code.Unauthenticated);
    // 30 s of clock skew is allowed, and a sub of 255 bytes is accepted.
    await client().reserve({ eventId: "id-1" }, { headers: { authorization: `Bearer ${await token(ed, { sub: "skew", exp: Math.floor(Date.now() / 1000) - 10 })}` } });
    expect((await client().reserve({ eventId: "id-1" }, await bearer("s".repeat(255)))).userId).toHaveLength(255);
  });

  it("a service credential reserves for a user it names, and a ticket alone still works where the request carries one", async () => {
    const service = { headers: { "x-service-token": "booking-s3cret" } };
    const carol = await client().reserve({ eventId: "id-1", userId: "carol" }, service);
    expect(carol.userId).toBe("carol");
    expect((await client().reserve({ eventId: "id-1", userId: "carol" }, service)).ticket).not.toBe("");
    expect(await refused(client().reserve({ eventId: "id-1" }, service))).toBe(Code.InvalidArgument);
    expect(await refused(client().reserve({ eventId: "id-1", userId: "carol" }, { headers: { "x-service-token": "guess" } }))).toBe(Code.Unauthenticated);
    // A traveller's device that kept only the ticket (the "continue on another device" link).
    expect((await client().cancel({ eventId: "id-1", userId: "carol", ticket: carol.ticket })).status).toBe(ReservationStatus.CANCELLED);
  });

  it.skipIf(ON_CLUSTER)("a Reserve that timed out while Redis was paused is recovered, with a ticket, by repeating it", async () => {
    const gina = await bearer("gina");
    env.redis.pause();
    let first: Code;
    try {
      first = await refused(client().reserve({ eventId: "id-1" }, gina));
    } finally {
      env.redis.resume();
    }
    expect(first).toBe(Code.Unavailable);
    await new Promise((r) => setTimeout(r, 200));
    // The paused Redis ran the write when it woke: the retry finds the same entry, and gets a ticket.
    const again = await client().reserve({ eventId: "id-1" }, gina);
    expect(again.alreadyInQueue || again.alreadyReserved).toBe(true);
    expect(again.ticket).not.toBe("");
  });
});

describe("user tokens from a JWKS URL", () => {
  let server: Server;
  let served: { keys: JWK[] };
  let url: string;
  beforeAll(async () => {
    served = { keys: [] };
    server = createServer((_req, res) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(served)));
    await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
    const address = server.address();
    url = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}/jwks.json`;
  });
  afterAll(() => new Promise<void>((done) => server.close(() => done())));

  it("verifies with the published keys and picks up a rotated key (a new kid)", async () => {
    const first = await signer("EdDSA", "2026-1");
    served = { keys: [first.jwk] };
    const verify = userJwtVerifier({ userJwksUrl: url, userJwtAudience: AUDIENCE }, 100);
    if (!verify) throw new Error("no verifier");
    expect(await verify(await token(first.signer, { sub: "hana" }))).toBe("hana");
    const next = await signer("RS256", "2026-2");
    served = { keys: [first.jwk, next.jwk] };
    await new Promise((r) => setTimeout(r, 150));
    expect(await verify(await token(next.signer, { sub: "hana" }))).toBe("hana");
    // A kid the provider never published is refused.
    const rogue = await signer("EdDSA", "2026-9");
    await expect(verify(await token(rogue.signer, { sub: "hana" }))).rejects.toSatisfy((e) => code(e) === Code.Unauthenticated);
  });
});

describe("per-caller limits with users known", () => {
  const limited = useTestService(async () => ({
    userJwt: userJwtVerifier({ userJwtPublicKey: JSON.stringify(publicJwks), userJwtAudience: AUDIENCE }),
    rateLimit: { perMinute: 2, trustedProxies: new Set(), serviceTokens: new Map() },
  }));
  it("count per signed-in user, not per address: one user's third Reserve is 429, another's from the same address passes", async () => {
    const c = createClient(TicketQueueService, createConnectTransport({ baseUrl: limited.svc.baseUrl, httpVersion: "1.1" }));
    const ivan = await bearer("ivan");
    await c.reserve({}, ivan);
    await c.reserve({}, ivan);
    expect(await refused(c.reserve({}, ivan))).toBe(Code.ResourceExhausted);
    expect((await c.reserve({}, await bearer("jun"))).userId).toBe("jun");
  });
});

describe("anonymous retries with an idempotency_key", () => {
  const anonymous = useTestService({ commandTimeoutMs: 500 });
  const anon = () => createClient(TicketQueueService, createGrpcTransport({ baseUrl: anonymous.svc.baseUrl }));
  const KEY = "Yx3-9qLm_Vt8ZpR2kWc7Nf4Hb";

  it("a repeat with the key gets a ticket for the same entry; after a cancel it gets CANCELLED and does not re-join; bad keys are refused", async () => {
    const first = await anon().reserve({ userId: "kay", idempotencyKey: KEY });
    const again = await anon().reserve({ userId: "kay", idempotencyKey: KEY });
    expect(again).toMatchObject({ alreadyReserved: true });
    expect(again.ticket).not.toBe("");
    expect((await anon().reserve({ userId: "kay" })).ticket).toBe("");
    expect((await anon().reserve({ userId: "kay", idempotencyKey: "another-key-0123456789abc" })).ticket).toBe("");
    await anon().cancel({ userId: "kay", ticket: first.ticket });
    const ended = await anon().reserve({ userId: "kay", idempotencyKey: KEY });
    expect(ended).toMatchObject({ status: ReservationStatus.CANCELLED, ticket: "" });
    for (const bad of ["short", "x".repeat(65), "has a space in it 0123456789", "한국어키한국어키한국어키한국어키한국어키한국어키"]) {
      expect(await refused(anon().reserve({ userId: "kay", idempotencyKey: bad })), bad).toBe(Code.InvalidArgument);
    }
  });

  it.skipIf(ON_CLUSTER)("a Reserve that timed out while Redis was paused is recovered, with a ticket, by repeating it with its key", async () => {
    anonymous.redis.pause();
    let first: Code;
    try {
      first = await refused(anon().reserve({ userId: "lost-answer", idempotencyKey: KEY }));
    } finally {
      anonymous.redis.resume();
    }
    expect(first).toBe(Code.Unavailable);
    await new Promise((r) => setTimeout(r, 200));
    const again = await anon().reserve({ userId: "lost-answer", idempotencyKey: KEY });
    expect(again.alreadyReserved || again.alreadyInQueue).toBe(true);
    expect(again.ticket).not.toBe("");
    // Without the key, as before: no ticket for someone who only knows the id.
    expect((await anon().reserve({ userId: "lost-answer" })).ticket).toBe("");
  });
});

