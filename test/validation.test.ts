import * as http2 from "node:http2";
import { brotliCompressSync, gzipSync } from "node:zlib";
import { create } from "@bufbuild/protobuf";
import { TimestampSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { importJWK, SignJWT, type JWK } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { TicketQueueService } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { eventKeys, ticketKeyKey } from "../src/queue/keys.js";
import { TEST_ADMIN_TOKEN, useTestService } from "./helpers/service.js";

// Input is checked before anything is written; what is already stored never
// makes a read fail; ids and credentials that look harmless but are not are refused.

let client: ReturnType<typeof createClient<typeof TicketQueueService>>;
const admin = { headers: { "x-token": TEST_ADMIN_TOKEN } };
const codeOf = (p: Promise<unknown>): Promise<Code | "ok"> => p.then(() => "ok" as const, (e: unknown) => ConnectError.from(e).code);

const env = useTestService();
beforeAll(async () => {
  client = createClient(TicketQueueService, createGrpcTransport({ baseUrl: env.svc.baseUrl }));
});

async function auditOf(key: string): Promise<Record<string, string>[]> {
  return (await env.svc.redis.xrange(key, "-", "+")).map(([, fields]) => {
    const record: Record<string, string> = {};
    for (let i = 0; i < fields.length; i += 2) record[fields[i] ?? ""] = fields[i + 1] ?? "";
    return record;
  });
}

describe("timestamps are checked before they are stored", () => {
  const bad = [
    { name: "year 10000", t: { seconds: 253_402_300_800n, nanos: 0 } },
    { name: "seconds 2^62", t: { seconds: 2n ** 62n, nanos: 0 } },
    { name: "year 0", t: { seconds: -62_135_596_801n, nanos: 0 } },
    { name: "before 1970", t: { seconds: -1n, nanos: 0 } },
    { name: "negative nanos", t: { seconds: 1_900_000_000n, nanos: -1 } },
    { name: "nanos of a whole second", t: { seconds: 1_900_000_000n, nanos: 1_000_000_000 } },
  ];

  it.each(bad)("CreateEvent and UpdateEvent refuse $name with INVALID_ARGUMENT, record the refusal, and every read still works", async ({ t }) => {
    const stamp = create(TimestampSchema, t);
    const eventId = `t-${Math.abs(Number(t.seconds % 1000n))}-${t.nanos}`.replace(/[^\w-]/g, "");
    expect(await codeOf(client.createEvent({ eventId, capacity: 1, opensAt: stamp }, admin))).toBe(Code.InvalidArgument);
    expect(await codeOf(client.createEvent({ eventId, capacity: 1, closesAt: stamp }, admin))).toBe(Code.InvalidArgument);
    await client.createEvent({ eventId: `${eventId}-ok`, capacity: 1 }, admin);
    expect(await codeOf(client.updateEvent({ eventId: `${eventId}-ok`, opensAt: stamp }, admin))).toBe(Code.InvalidArgument);
    expect(await codeOf(client.updateEvent({ eventId: `${eventId}-ok`, closesAt: stamp }, admin))).toBe(Code.InvalidArgument);
    expect((await client.getEvent({ eventId: `${eventId}-ok` })).event?.opensAt).toBeUndefined();
    expect((await client.listEvents({})).events.length).toBeGreaterThan(0);
    expect((await fetch(`${env.svc.baseUrl}/v1/events`)).status).toBe(200);
    // The refused call is in the audit log, its request summarised.
    const last = (await auditOf(`${env.svc.prefix}:audit`)).at(-1);
    expect(last).toMatchObject({ who: "token", rpc: "UpdateEvent", outcome: String(Code.InvalidArgument) });
  });

  it("REST refuses a time JSON cannot hold with 400", async () => {
    const res = await fetch(`${env.svc.baseUrl}/v1/events`, {
      method: "POST",
      headers: { "x-token": TEST_ADMIN_TOKEN, "content-type": "application/json" },
      body: JSON.stringify({ event_id: "rest-time", capacity: 1, opens_at: "10000-01-01T00:00:00Z" }),
    });
    expect(res.status).toBe(400);
  });
});

describe("what is already stored never breaks a read", () => {
  it("garbage in an event's fields (written by hand or an older version) reads as 0: GetEvent, ListEvents, Reserve and the metrics still answer", async () => {
    await client.createEvent({ eventId: "tampered", capacity: 5 }, admin);
    const [meta = ""] = eventKeys(env.svc.prefix, "tampered");
    await env.svc.redis.hset(meta, { opens_at: "abc", closes_at: "1e300", hold_seconds: "nan", joined_total: "-7", version: "inf", promoted_total: "99999999999999999999" });
    const event = (await client.getEvent({ eventId: "tampered" })).event;
    expect(event).toMatchObject({ eventId: "tampered", capacity: 5, holdSeconds: 0 });
    expect(event?.opensAt).toBeUndefined();
    expect(event?.closesAt).toBeUndefined();
    expect((await client.listEvents({})).events.map((e) => e.eventId)).toContain("tampered");
    expect((await fetch(`${env.svc.baseUrl}/v1/events/tampered`)).status).toBe(200);
    expect((await client.reserve({ eventId: "tampered", userId: "after-tampering" })).ticket).not.toBe("");
    expect((await fetch(`${env.svc.baseUrl}/metrics`)).status).toBe(200);
  });
});

describe("paging tokens and feed cursors", () => {
  it("a page_token or cursor this service never gave out is INVALID_ARGUMENT (400), not an internal error", async () => {
    for (const token of ["99999999999999999999", "18446744073709551616", "abc", "-1", "1e3"]) {
      expect(await codeOf(client.listSeatHolders({ pageToken: token }, admin))).toBe(Code.InvalidArgument);
      expect((await fetch(`${env.svc.baseUrl}/v1/events/default/seats?page_token=${token}`, admin)).status).toBe(400);
    }
    for (const cursor of ["abc", "1-2-3", "99999999999999999999-0", "-5"]) {
      const first = client.watchEvent({ cursor }, admin)[Symbol.asyncIterator]().next();
      expect(await codeOf(first)).toBe(Code.InvalidArgument);
    }
    const ok = client.watchEvent({ cursor: "0-0" }, admin)[Symbol.asyncIterator]();
    expect(await codeOf(ok.next())).toBe("ok");
    await ok.return?.();
  });
});

describe("ids", () => {
  it("event ids made only of dots are refused", async () => {
    for (const eventId of [".", "..", "..."]) {
      expect(await codeOf(client.createEvent({ eventId, capacity: 1 }, admin))).toBe(Code.InvalidArgument);
      expect(await codeOf(client.reserve({ eventId }))).toBe(Code.InvalidArgument);
    }
    expect(await codeOf(client.createEvent({ eventId: "ktx.101", capacity: 1 }, admin))).toBe("ok");
  });

  it("user ids with bidi overrides, invisible or separator characters are refused on every RPC", async () => {
    for (const userId of ["kim\u202eevil", "a\u2028b", "a\u2029b", "k\u200dim", "\ufeffkim", "kim\u2066"]) {
      expect(await codeOf(client.reserve({ userId }))).toBe(Code.InvalidArgument);
      expect(await codeOf(client.getStatus({ userId }))).toBe(Code.InvalidArgument);
      expect(await codeOf(client.adminCancel({ userId }, admin))).toBe(Code.InvalidArgument);
    }
    const res = await fetch(`${env.svc.baseUrl}/reserve`, { method: "POST", body: JSON.stringify({ user_id: "\u202ekim" }) });
    expect(res.status).toBe(400);
    // Letters of every script, and ordinary spaces, are fine.
    expect(await codeOf(client.reserve({ userId: "김 민수" }))).toBe("ok");
  });
});

describe("credentials must expire", () => {
  it("a ticket without exp, signed with the real ticket key, is UNAUTHENTICATED", async () => {
    const { userId, ticket } = await client.reserve({ userId: "no-exp" });
    const claims = JSON.parse(Buffer.from(ticket.split(".")[1] ?? "", "base64url").toString()) as Record<string, unknown>;
    delete claims["exp"];
    const jwk = JSON.parse((await env.svc.redis.get(ticketKeyKey(env.svc.prefix))) ?? "{}") as JWK;
    const forever = await new SignJWT(claims).setProtectedHeader({ alg: "EdDSA" }).sign(await importJWK(jwk, "EdDSA"));
    expect(await codeOf(client.cancel({ userId, ticket: forever }))).toBe(Code.Unauthenticated);
    expect(await codeOf(client.cancel({ userId, ticket }))).toBe("ok");
  });
});

describe("attacks found from outside", () => {
  it("Connect binary messages that do not decode are INVALID_ARGUMENT (400) whatever the content-type's case, a query string, or GET", async () => {
    const path = `${env.svc.baseUrl}/ticketqueue.v1.TicketQueueService/GetStatus`;
    const truncated = Buffer.from([0x0a, 0x09, 0x61]); // field 1, 9 bytes announced, 1 sent
    for (const [url, contentType] of [[path, "Application/Proto"], [`${path}?x=1`, "application/proto"]] as const) {
      const res = await fetch(url, { method: "POST", headers: { "content-type": contentType, "connect-protocol-version": "1" }, body: truncated });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { message: string }).message).not.toMatch(/RangeError|TypeError/);
    }
    // A content type Connect does not take is refused as such (415), decodable or not.
    for (const body of [truncated, Buffer.alloc(0)]) {
      const res = await fetch(path, { method: "POST", headers: { "content-type": "application/proto; charset=binary" }, body });
      expect(res.status).toBe(415);
    }
    const get = await fetch(`${path}?connect=v1&encoding=proto&base64=1&message=${truncated.toString("base64url")}`);
    expect(get.status).toBe(400);
    // Compressed too (gzip, brotli), compressed data that is not, or cut short: never connect-node's 500.
    const cutShort = gzipSync(JSON.stringify({ userId: "a1" })).subarray(0, 20);
    for (const [compression, bytes] of [["gzip", gzipSync(truncated)], ["br", brotliCompressSync(truncated)], ["gzip", truncated], ["gzip", cutShort]] as const) {
      const compressed = await fetch(`${path}?connect=v1&encoding=proto&base64=1&compression=${compression}&message=${bytes.toString("base64url")}`);
      expect(compressed.status).toBe(400);
    }
    // What Connect serves is still served: a "?" inside a JSON message, an empty compressed message.
    expect((await fetch(`${path}?connect=v1&encoding=json&message=${'{"userId":"a?b"}'}`)).status).toBe(200);
    expect((await fetch(`${path.replace("GetStatus", "Health")}?connect=v1&encoding=proto&base64=1&compression=gzip&message=`)).status).toBe(200);
    // Raw bytes that are no message, JSON whose base64 is not, JSON cut short after gzip.
    for (const query of ["encoding=proto&message=%FF%FF%FF", "encoding=json&base64=1&message=!!!!", `encoding=json&base64=1&compression=gzip&message=${cutShort.toString("base64url")}`]) {
      const res = await fetch(`${path}?connect=v1&${query}`);
      expect(res.status, query).toBe(400);
    }
    // A POST whose gzip or brotli body is cut short (the lean path), and gRPC and gRPC-web ones (connect-node): the client's fault.
    for (const [encoding, body] of [["gzip", cutShort], ["br", brotliCompressSync(JSON.stringify({ userId: "a1" })).subarray(0, 8)]] as const) {
      const res = await fetch(path, { method: "POST", headers: { "content-type": "application/json", "content-encoding": encoding }, body });
      expect(res.status, encoding).toBe(400);
    }
    const frame = Buffer.concat([Buffer.from([1, 0, 0, 0, cutShort.length]), cutShort]);
    for (const contentType of ["application/grpc", "application/grpc-web+proto"]) {
      const session = http2.connect(env.svc.baseUrl);
      const stream = session.request({ ":method": "POST", ":path": "/ticketqueue.v1.TicketQueueService/GetStatus", "content-type": contentType, "grpc-encoding": "gzip", te: "trailers" });
      stream.end(frame);
      let status: string | undefined;
      stream.on("response", (h) => (status ??= h["grpc-status"] as string | undefined));
      stream.on("trailers", (h) => (status ??= h["grpc-status"] as string | undefined));
      let body = "";
      stream.on("data", (chunk: Buffer) => (body += chunk.toString("latin1")));
      await new Promise((r) => stream.once("close", r));
      session.close();
      // (gRPC-web carries its status in a trailer frame of the body)
      expect(status ?? /grpc-status: ?(\d+)/.exec(body)?.[1], contentType).toBe(String(Code.InvalidArgument));
    }
  });

  it("a stored time past what a Date holds (opens_at 1e20) neither crashes a refusal nor disagrees between reads and writes", async () => {
    await client.createEvent({ eventId: "far-future", capacity: 2 }, admin);
    const [meta = ""] = eventKeys(env.svc.prefix, "far-future");
    await env.svc.redis.hset(meta, "opens_at", "1e20");
    expect((await client.getEvent({ eventId: "far-future" })).event?.opensAt).toBeUndefined();
    // Read as "no opening time" by the scripts too: open.
    expect(await codeOf(client.reserve({ eventId: "far-future", userId: "early" }))).toBe("ok");
  });

  it("an event whose keys hold the wrong type is reported (FAILED_PRECONDITION), and left out of ListEvents instead of failing it", async () => {
    await client.createEvent({ eventId: "damaged", capacity: 2 }, admin);
    const [meta = ""] = eventKeys(env.svc.prefix, "damaged");
    await env.svc.redis.del(meta);
    await env.svc.redis.set(meta, "not a hash");
    expect(await codeOf(client.getEvent({ eventId: "damaged" }))).toBe(Code.FailedPrecondition);
    expect(await codeOf(client.reserve({ eventId: "damaged", userId: "x" }))).toBe(Code.FailedPrecondition);
    const events = (await client.listEvents({})).events.map((e) => e.eventId);
    expect(events).not.toContain("damaged");
    expect(events).toContain("default");
  });

  it("the feed cursor of the largest stream id is refused, not an internal error", async () => {
    const first = client.watchEvent({ cursor: "18446744073709551615-18446744073709551615" }, admin)[Symbol.asyncIterator]().next();
    expect(await codeOf(first)).toBe(Code.InvalidArgument);
  });

  it("user ids that look blank or like someone else (non-ASCII spaces, fillers, private or unassigned code points, stacked marks, edge spaces) are refused", async () => {
    for (const userId of ["a\u00a0b", "\u3164", "\u2800", " ", " kim", "kim ", "\uffff", "\ue000", "a\u0301\u0301\u0301"]) {
      expect(await codeOf(client.reserve({ userId })), JSON.stringify(userId)).toBe(Code.InvalidArgument);
    }
    expect(await codeOf(client.reserve({ userId: "re\u0301sume\u0301" }))).toBe("ok");
  });
});
