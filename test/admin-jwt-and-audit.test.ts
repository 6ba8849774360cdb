import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { exportJWK, generateKeyPair, importJWK, SignJWT, type CryptoKey, type JWK } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TicketQueueService } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { ticketKeyKey } from "../src/queue/keys.js";
import { adminJwtVerifier } from "../src/server/admin-auth.js";
import { startTestRedis, type TestRedis } from "./helpers/redis-server.js";
import { startTestService, TEST_ADMIN_TOKEN, type TestService } from "./helpers/service.js";

let redis: TestRedis;
let svc: TestService;
let signingKey: CryptoKey;
let client: ReturnType<typeof createClient<typeof TicketQueueService>>;

beforeAll(async () => {
  redis = await startTestRedis();
  const { privateKey, publicKey } = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
  signingKey = privateKey;
  const adminJwt = await adminJwtVerifier({ publicKey: JSON.stringify(await exportJWK(publicKey)) });
  svc = await startTestService(redis.url, { adminJwt });
  client = createClient(TicketQueueService, createGrpcTransport({ baseUrl: svc.baseUrl }));
});
afterAll(async () => {
  await svc.close();
  await redis.dispose();
});

const jwt = (claims: { aud?: string; sub?: string; expSecondsFromNow?: number }, key: CryptoKey = signingKey): Promise<string> => {
  const token = new SignJWT({}).setProtectedHeader({ alg: "EdDSA" }).setIssuedAt().setExpirationTime(Math.floor(Date.now() / 1000) + (claims.expSecondsFromNow ?? 300));
  if (claims.aud) token.setAudience(claims.aud);
  if (claims.sub) token.setSubject(claims.sub);
  return token.sign(key);
};
const bearer = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });
const code = (err: unknown): Code => ConnectError.from(err).code;

describe("admin JWTs", () => {
  it("accept a JWT for the admin audience beside the static token", async () => {
    expect(await client.processQueue({}, bearer(await jwt({ aud: "ticketqueue:admin", sub: "ops-kim" })))).toMatchObject({ promotedCount: 0 });
    expect(await client.processQueue({}, { headers: { "x-token": TEST_ADMIN_TOKEN } })).toMatchObject({ promotedCount: 0 });
  });

  it("refuse a wrong audience, an expired token, another key, and a ticket", async () => {
    await expect(client.processQueue({}, bearer(await jwt({ aud: "ticketqueue:ticket", sub: "x" })))).rejects.toSatisfy((e) => code(e) === Code.Unauthenticated);
    await expect(client.processQueue({}, bearer(await jwt({ aud: "ticketqueue:admin", sub: "x", expSecondsFromNow: -60 })))).rejects.toSatisfy(
      (e) => code(e) === Code.Unauthenticated && /expired/.test(String(e)),
    );
    const { privateKey: other } = await generateKeyPair("EdDSA", { crv: "Ed25519" });
    await expect(client.processQueue({}, bearer(await jwt({ aud: "ticketqueue:admin", sub: "x" }, other)))).rejects.toSatisfy((e) => code(e) === Code.Unauthenticated);
    // A real ticket, signed by the ticket key, is no admin credential.
    const ticket = (await client.reserve({ userId: "holder" })).ticket;
    await expect(client.processQueue({}, bearer(ticket))).rejects.toSatisfy((e) => code(e) === Code.Unauthenticated);
    const ticketKey = (await importJWK(JSON.parse((await svc.redis.get(ticketKeyKey(svc.prefix))) ?? "{}") as JWK, "EdDSA")) as CryptoKey;
    await expect(client.processQueue({}, bearer(await jwt({ aud: "ticketqueue:admin", sub: "forger" }, ticketKey)))).rejects.toSatisfy((e) => code(e) === Code.Unauthenticated);
  });
});

describe("audit log", () => {
  it("records every admin call, allowed or refused: who, what, when, outcome", async () => {
    await svc.redis.del(`${svc.prefix}:audit`);
    await client.createEvent({ eventId: "audited", capacity: 2 }, bearer(await jwt({ aud: "ticketqueue:admin", sub: "ops-lee" })));
    await client.reset({ eventId: "audited", confirm: "audited" }, { headers: { "x-token": TEST_ADMIN_TOKEN } });
    await client.reset({ eventId: "audited", confirm: "audited" }, { headers: { "x-token": "guess" } }).catch(() => undefined);
    await client.reserve({ userId: "not-admin" }); // not an admin call: not recorded
    await new Promise((r) => setTimeout(r, 100)); // a refusal is recorded without delaying the answer
    const entries = (await svc.redis.xrange(`${svc.prefix}:audit`, "-", "+")).map(([id, fields]) => {
      const record: Record<string, string> = { id };
      for (let i = 0; i < fields.length; i += 2) record[fields[i] ?? ""] = fields[i + 1] ?? "";
      return record;
    });
    expect(entries.map(({ who, rpc, outcome }) => ({ who, rpc, outcome }))).toEqual([
      { who: "jwt:ops-lee", rpc: "CreateEvent", outcome: "ok" },
      { who: "token", rpc: "Reset", outcome: "ok" },
      { who: "unauthenticated", rpc: "Reset", outcome: String(Code.Unauthenticated) },
    ]);
    expect(JSON.parse(entries[0]?.["request"] ?? "{}")).toMatchObject({ eventId: "audited", capacity: 2 });
    expect(Number(entries[0]?.id.split("-")[0])).toBeGreaterThan(Date.now() - 60_000);
    // Tokens never reach the log.
    expect(JSON.stringify(entries)).not.toContain(TEST_ADMIN_TOKEN);
  });
});
