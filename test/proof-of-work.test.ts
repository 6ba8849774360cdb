import { createHash } from "node:crypto";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { createChallenge, solveChallenge, verifySolution } from "altcha-lib/v1";
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import { TicketQueueService } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { challengeKeyKey } from "../src/queue/keys.js";
import { userJwtVerifier } from "../src/rpc/user-identity.js";
import { Challenges, solves } from "../src/tickets/challenges.js";
import { TEST_ADMIN_TOKEN, useTestService } from "./helpers/service.js";

// Events that make every Reserve carry a solved ALTCHA challenge (SHA-256).

const env = useTestService();
const admin = { headers: { "x-token": TEST_ADMIN_TOKEN } };
const grpc = () => createClient(TicketQueueService, createGrpcTransport({ baseUrl: env.svc.baseUrl }));

interface ChallengeLike {
  algorithm: string;
  challenge: string;
  maxNumber: number;
  salt: string;
  signature: string;
}

/**
 * Solves a challenge as a client does (ALTCHA's search: the n with SHA-256(salt + n)
 * = challenge), synchronously with node:crypto (altcha-lib's solver goes through
 * WebCrypto, about 40 µs a try here), and encodes it as the ALTCHA widget submits it.
 */
async function solve(c: ChallengeLike, number?: number): Promise<string> {
  let found = number;
  for (let n = 0; found === undefined && n <= c.maxNumber; n++) {
    if (createHash("sha256").update(c.salt + String(n)).digest("hex") === c.challenge) found = n;
  }
  if (found === undefined) throw new Error("no solution");
  return Buffer.from(JSON.stringify({ algorithm: c.algorithm, challenge: c.challenge, number: found, salt: c.salt, signature: c.signature })).toString("base64");
}

async function refusal(call: Promise<unknown>): Promise<{ code: Code; reason: string | undefined }> {
  try {
    await call;
  } catch (err: unknown) {
    const e = ConnectError.from(err);
    return { code: e.code, reason: e.findDetails(ErrorInfoSchema)[0]?.reason };
  }
  throw new Error("the call was answered");
}

describe("proof of work per event", () => {
  it("Reserve on such an event needs a solved challenge: over gRPC, Connect and REST a solution joins, none is CHALLENGE_REQUIRED", async () => {
    await grpc().createEvent({ eventId: "pow-1", capacity: 100, powDifficulty: 5000 }, admin);
    expect((await grpc().getEvent({ eventId: "pow-1" })).event?.powDifficulty).toBe(5000);
    expect(await refusal(grpc().reserve({ eventId: "pow-1", userId: "a" }))).toEqual({ code: Code.FailedPrecondition, reason: "CHALLENGE_REQUIRED" });

    const transports: [string, Transport][] = [
      ["gRPC", createGrpcTransport({ baseUrl: env.svc.baseUrl })],
      ["Connect", createConnectTransport({ baseUrl: env.svc.baseUrl, httpVersion: "1.1" })],
    ];
    for (const [name, transport] of transports) {
      const client = createClient(TicketQueueService, transport);
      const challenge = await client.getChallenge({ eventId: "pow-1" });
      expect(challenge.maxNumber).toBe(5000);
      const joined = await client.reserve({ eventId: "pow-1", userId: `via-${name}`, powSolution: await solve(challenge) });
      expect(joined.ticket, name).not.toBe("");
    }
    const viaRest = (await (await fetch(`${env.svc.baseUrl}/v1/events/pow-1/challenge`)).json()) as { algorithm: string; challenge: string; max_number: number; salt: string; signature: string };
    const solution = await solve({ ...viaRest, maxNumber: viaRest.max_number });
    const res = await fetch(`${env.svc.baseUrl}/v1/events/pow-1/reserve`, { method: "POST", body: JSON.stringify({ user_id: "via-REST", pow_solution: solution }) });
    expect(res.status).toBe(200);
    const none = await fetch(`${env.svc.baseUrl}/v1/events/pow-1/reserve`, { method: "POST", body: JSON.stringify({ user_id: "no-work" }) });
    expect(none.status).toBe(400);
    expect(await none.json()).toMatchObject({ code: "failed_precondition" });
  });

  it("a solution is used once: another user's Reserve with it is CHALLENGE_USED; the same user's retry (same key) with it succeeds and gets the ticket", async () => {
    const solution = await solve(await grpc().getChallenge({ eventId: "pow-1" }));
    const key = "pow-retry-key-0123456789ab";
    const first = await grpc().reserve({ eventId: "pow-1", userId: "solver", powSolution: solution, idempotencyKey: key });
    expect(await refusal(grpc().reserve({ eventId: "pow-1", userId: "thief", powSolution: solution }))).toEqual({ code: Code.FailedPrecondition, reason: "CHALLENGE_USED" });
    const retry = await grpc().reserve({ eventId: "pow-1", userId: "solver", powSolution: solution, idempotencyKey: key });
    expect([retry.position, retry.ticket !== ""]).toEqual([first.position, true]);
  });

  it("wrong, foreign, forged, oversized and expired solutions are refused with their reason", async () => {
    await grpc().createEvent({ eventId: "pow-2", capacity: 100, powDifficulty: 5000 }, admin);
    const c = await grpc().getChallenge({ eventId: "pow-1" });
    const right = await solve(c);
    const wrongNumber = await solve(c, (JSON.parse(Buffer.from(right, "base64").toString()) as { number: number }).number + 1);
    const cases: [string, string][] = [
      ["the wrong number", wrongNumber],
      ["another event's challenge", await solve(await grpc().getChallenge({ eventId: "pow-2" }))],
      ["not base64 JSON", "%%%"],
      ["JSON of another shape", Buffer.from(JSON.stringify({ algorithm: "SHA-1", challenge: 1 })).toString("base64")],
      ["oversized", "A".repeat(10_000)],
    ];
    for (const [what, powSolution] of cases) {
      expect(await refusal(grpc().reserve({ eventId: "pow-1", userId: "forger", powSolution })), what).toEqual({ code: Code.FailedPrecondition, reason: "CHALLENGE_INVALID" });
    }
    // A challenge signed with this service's own key but expired (made here with the key the service keeps in Redis).
    const hmacKey = (await env.svc.redis.get(challengeKeyKey(env.svc.prefix))) ?? "";
    const expired = await createChallenge({ algorithm: "SHA-256", hmacKey, maxNumber: 1000, expires: new Date(Date.now() - 1000), params: { evt: "pow-1" } });
    expect(await refusal(grpc().reserve({ eventId: "pow-1", userId: "late", powSolution: await solve({ ...expired, maxNumber: 1000 }) }))).toEqual({ code: Code.FailedPrecondition, reason: "CHALLENGE_EXPIRED" });
    // An event without proof of work gives no challenge; UpdateEvent turns it on and off.
    expect((await refusal(grpc().getChallenge({ eventId: "default" }))).code).toBe(Code.FailedPrecondition);
    await grpc().updateEvent({ eventId: "pow-2", powDifficulty: 0 }, admin);
    expect((await grpc().reserve({ eventId: "pow-2", userId: "free" })).ticket).not.toBe("");
  });

  it("the service's check of a solution agrees with altcha-lib's verifySolution, on solutions right and tampered", async () => {
    const hmacKey = "a-key-for-this-test";
    for (let i = 0; i < 20; i++) {
      const c = await createChallenge({ algorithm: "SHA-256", hmacKey, maxNumber: 200, params: { evt: "x" } });
      const found = (await solveChallenge(c.challenge, c.salt, "SHA-256", 200).promise)?.number ?? -1;
      const payloads = [
        { algorithm: "SHA-256" as const, challenge: c.challenge, number: found, salt: c.salt, signature: c.signature },
        { algorithm: "SHA-256" as const, challenge: c.challenge, number: found + 1, salt: c.salt, signature: c.signature },
        { algorithm: "SHA-256" as const, challenge: c.challenge, number: found, salt: `${c.salt}x`, signature: c.signature },
        // The number's first digit moved onto the end of the salt (same string hashed, without ALTCHA's "&" rule).
        ...(found >= 10 ? [{ algorithm: "SHA-256" as const, challenge: c.challenge, number: Number(String(found).slice(1)), salt: c.salt + String(found)[0], signature: c.signature }] : []),
        { algorithm: "SHA-256" as const, challenge: c.challenge, number: found, salt: c.salt, signature: c.signature.replace(/^./, (d) => (d === "0" ? "1" : "0")) },
      ];
      for (const p of payloads) expect(solves(p, hmacKey)).toBe(await verifySolution(p, hmacKey, false));
      expect(solves(payloads[0]!, hmacKey)).toBe(true);
    }
  });

  it("verifying costs microseconds (printed; asserted under 1 ms)", async () => {
    const challenges = new Challenges(env.svc.redis, challengeKeyKey(env.svc.prefix));
    const lines: string[] = [];
    for (const difficulty of [50_000, 200_000]) {
      const solution = await solve(await challenges.create("pow-1", difficulty, undefined));
      const N = 5000;
      const started = performance.now();
      for (let i = 0; i < N; i++) await challenges.verify(solution, "pow-1", undefined);
      const verifyUs = ((performance.now() - started) * 1000) / N;
      lines.push(`difficulty ${difficulty.toLocaleString("en")}: verify ${verifyUs.toFixed(1)} µs per call (parse, binding, SHA-256 and HMAC; ${N} calls)`);
      expect(verifyUs).toBeLessThan(1000);
    }
    console.log(lines.join("\n"));
  });
});

describe("proof of work with users known by their tokens", () => {
  let key: CryptoKey;
  let jwks = "";
  beforeAll(async () => {
    const pair = await generateKeyPair("EdDSA", { extractable: true });
    key = pair.privateKey;
    jwks = JSON.stringify({ keys: [{ ...(await exportJWK(pair.publicKey)), kid: "k", alg: "EdDSA" }] });
  });
  const known = useTestService(async () => ({ userJwt: userJwtVerifier({ userJwtPublicKey: jwks, userJwtAudience: "ktx-web" }) }));
  const as = async (sub: string) => ({
    headers: { authorization: `Bearer ${await new SignJWT({ sub }).setProtectedHeader({ alg: "EdDSA", kid: "k" }).setAudience("ktx-web").setExpirationTime("5m").sign(key)}` },
  });

  it("a challenge is bound to the user it was given to: another user's Reserve with its solution is CHALLENGE_INVALID", async () => {
    const c = createClient(TicketQueueService, createGrpcTransport({ baseUrl: known.svc.baseUrl }));
    await c.createEvent({ eventId: "pow-id", capacity: 10, powDifficulty: 2000 }, admin);
    expect((await refusal(c.getChallenge({ eventId: "pow-id" }))).code).toBe(Code.Unauthenticated);
    const solution = await solve(await c.getChallenge({ eventId: "pow-id" }, await as("alice")));
    expect(await refusal(c.reserve({ eventId: "pow-id", powSolution: solution }, await as("bob")))).toEqual({ code: Code.FailedPrecondition, reason: "CHALLENGE_INVALID" });
    expect((await c.reserve({ eventId: "pow-id", powSolution: solution }, await as("alice"))).userId).toBe("alice");
  });
});

