import { createPrivateKey, generateKeyPairSync, sign, verify } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ed25519Signer } from "../src/tickets/ed25519.js";
import { Tickets } from "../src/tickets/tickets.js";
import { startTestRedis, type TestRedis } from "./helpers/redis-server.js";

let redis: TestRedis;
let client: Redis;
beforeAll(async () => {
  redis = await startTestRedis();
  client = new Redis(redis.url);
});
afterAll(async () => {
  client.disconnect();
  await redis.dispose();
});

describe("ticket signatures", () => {
  it("libsodium signs here, and its signatures are node:crypto's byte for byte", async () => {
    const { privateKey, publicKey } = generateKeyPairSync("ed25519");
    const signer = ed25519Signer(privateKey);
    expect(signer.library).toBe("libsodium");
    for (const text of ["", "a", "x".repeat(1000), "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ1In0"]) {
      const message = Buffer.from(text);
      const signature = signer.sign(message);
      expect(signature.equals(sign(null, message, privateKey))).toBe(true);
      expect(verify(null, message, publicKey, signature)).toBe(true);
    }
  });

  it("a ticket from the configured key verifies with node:crypto against the published key, and by Tickets itself", async () => {
    const pem = generateKeyPairSync("ed25519").privateKey.export({ format: "pem", type: "pkcs8" }).toString();
    const tickets = new Tickets(client, { configuredKey: pem, redisKey: "tickets-test:key", ttlSeconds: 60 });
    const ticket = await tickets.issue("ktx-1", "user-1", 7);
    const [header = "", payload = "", signature = ""] = ticket.split(".");
    const [jwk] = await tickets.publicKeys();
    const published = createPrivateKey(pem);
    expect(jwk?.x).toBe(published.export({ format: "jwk" }).x);
    const publicKey = { key: { kty: "OKP", crv: "Ed25519", x: jwk?.x ?? "" }, format: "jwk" as const };
    expect(verify(null, Buffer.from(`${header}.${payload}`), publicKey, Buffer.from(signature, "base64url"))).toBe(true);
    expect(await tickets.verify(ticket, "ktx-1", "user-1")).toBe(7);
    const flipped = Buffer.from(signature, "base64url");
    flipped[0] = (flipped[0] ?? 0) ^ 1;
    const tampered = `${header}.${payload}.${flipped.toString("base64url")}`;
    await expect(tickets.verify(tampered, "ktx-1", "user-1")).rejects.toThrow("not valid");
  });

  it("workers without a configured key share the one kept in Redis, and sign with it", async () => {
    const options = { configuredKey: undefined, redisKey: "tickets-test:shared", ttlSeconds: 60 };
    const [a, b] = [new Tickets(client, options), new Tickets(client, options)];
    expect(await a.signingLibrary()).toBe("libsodium");
    const ticket = await a.issue("ktx-2", "user-2", 3);
    expect(await b.verify(ticket, "ktx-2", "user-2")).toBe(3);
    expect(await b.publicKeys()).toEqual(await a.publicKeys());
  });
});
