import { createServer, type Server } from "node:http";
import { connect, type AddressInfo } from "node:net";
import { brotliCompressSync, gunzipSync, gzipSync } from "node:zlib";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { peerContext } from "../src/rpc/caller.js";
import { MAX_REQUEST_BYTES } from "../src/rpc/rpc-surface.js";
import { rawRequest, type RawResponse } from "./helpers/raw-http.js";
import { TEST_ADMIN_TOKEN, useTestService } from "./helpers/service.js";

// Connect unary calls (POST, JSON or binary, uncompressed, gzip or brotli) are served by
// the lean path (src/server/lean-connect.ts). Each of its answers must be what connect-node
// answers: the reference is connect-node's own adapter serving the same RPC surface (the
// same handlers and interceptors, on the same Redis) on a port of its own.

const env = useTestService();
const SERVICE = "/ticketqueue.v1.TicketQueueService";
const json = { "content-type": "application/json" };
let reference: Server;
let referencePort = 0;

beforeAll(async () => {
  const { rpc } = env.svc;
  reference = createServer(connectNodeAdapter({ routes: rpc.routes, interceptors: [...rpc.interceptors], readMaxBytes: MAX_REQUEST_BYTES, contextValues: (req) => peerContext(req.socket.remoteAddress) }));
  referencePort = await new Promise<number>((r) => reference.listen(0, "127.0.0.1", () => r((reference.address() as AddressInfo).port)));
});
afterAll(() => new Promise<void>((r) => reference.close(() => r())));

function call(method: string, body: string | Buffer, headers: Record<string, string> = json, viaConnectNode = false): Promise<RawResponse> {
  return rawRequest(viaConnectNode ? referencePort : env.svc.port, "POST", `${SERVICE}/${method}`, headers, body as string);
}

/** The answer of both paths to the same request: status, the headers that carry meaning, the (decompressed) body. */
async function bothPaths(method: string, body: string | Buffer, headers: Record<string, string> = json) {
  const shape = (r: RawResponse) => {
    const kept: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(r.headers)) if (!["date", "connection", "keep-alive", "transfer-encoding"].includes(name)) kept[name] = value;
    // (a compressed body's bytes may differ: what it says may not)
    const text = (r.headers["content-encoding"] === "gzip" ? gunzipSync(r.body) : r.body).toString("latin1");
    if (r.headers["content-encoding"] === "gzip") delete kept["content-length"];
    return { status: r.status, headers: kept, text };
  };
  const lean = shape(await call(method, body, headers));
  const viaConnectNode = shape(await call(method, body, headers, true));
  return { lean, viaConnectNode };
}

describe("the lean Connect unary path", () => {
  it("answers exactly what connect-node answers: messages, errors, their headers and HTTP statuses", async () => {
    await call("Reserve", JSON.stringify({ userId: "alice" }));
    const id = { ...json, "x-request-id": "lean-connect-1" };
    const cases: [string, string | Buffer, Record<string, string>][] = [
      ["GetStatus", JSON.stringify({ userId: "alice" }), id],
      ["GetStatus", Buffer.from([0x0a, 0x05, ...Buffer.from("alice")]), { "content-type": "application/proto", "x-request-id": "lean-connect-2" }],
      ["GetStatus", JSON.stringify({ userId: "alice", notAField: 1 }), { "content-type": "application/json; charset=utf-8", "x-request-id": "lean-connect-3" }],
      ["GetEvent", JSON.stringify({ eventId: "default" }), id],
      ["GetEvent", JSON.stringify({ eventId: "no-such-event" }), id],
      ["GetStatus", "{", id],
      ["GetStatus", "", id],
      ["GetStatus", JSON.stringify({ userId: 5 }), id],
      ["GetStatus", JSON.stringify({ userId: "bad\u0001id" }), id],
      ["ProcessQueue", "{}", id],
      ["ProcessQueue", "{}", { ...id, "x-token": TEST_ADMIN_TOKEN }],
      ["GetStatus", JSON.stringify({ userId: "alice" }), { ...id, "connect-timeout-ms": "soon" }],
      ["GetStatus", JSON.stringify({ userId: "alice" }), { ...id, "connect-timeout-ms": "99999999999" }],
      ["GetStatus", JSON.stringify({ userId: "alice" }), { ...id, "connect-timeout-ms": "5000" }],
      ["GetStatus", JSON.stringify({ userId: "alice" }), { ...id, "connect-timeout-ms": "-1" }],
      ["GetStatus", JSON.stringify({ userId: "alice" }), { ...id, "accept-encoding": "zstd" }],
      ["GetStatus", JSON.stringify({ userId: "alice" }), { ...id, "connect-timeout-ms": "9999999999" }],
      ["GetStatus", JSON.stringify({ userId: "alice" }), { ...id, "connect-timeout-ms": "1e12" }],
      // A byte order mark (PowerShell, .NET, a file saved with one): dropped, as Connect's TextDecoder does.
      ["GetStatus", Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify({ userId: "alice" }))]), id],
      ["GetStatus", Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), id],
      // Compressed requests: gzip and brotli, a body that is not what it says, a bomb past the 64 KiB limit, an encoding Connect does not take.
      ["GetStatus", gzipSync(JSON.stringify({ userId: "alice" })), { ...id, "content-encoding": "gzip" }],
      ["GetStatus", brotliCompressSync(JSON.stringify({ userId: "alice" })), { ...id, "content-encoding": "br" }],
      ["GetStatus", JSON.stringify({ userId: "alice" }), { ...id, "content-encoding": "gzip" }],
      ["GetStatus", gzipSync(JSON.stringify({ userId: " ".repeat(200_000) })), { ...id, "content-encoding": "gzip" }],
      ["GetStatus", JSON.stringify({ userId: "alice" }), { ...id, "content-encoding": "zstd" }],
      ["GetStatus", JSON.stringify({ userId: "alice" }), { ...id, "content-encoding": "identity" }],
    ];
    for (const [method, body, headers] of cases) {
      const { lean, viaConnectNode } = await bothPaths(method, body, headers);
      expect({ method, body: body.toString(), ...lean }).toEqual({ method, body: body.toString(), ...viaConnectNode });
      // (an encoding Connect does not take is `unimplemented`, 501, as the protocol has it: never an internal error)
      expect(lean.status === 501 || lean.status < 500).toBe(true);
    }
  });

  it("a deadline that has passed before the handler runs (0) is DEADLINE_EXCEEDED, and the call does nothing", async () => {
    const late = await call("Reserve", JSON.stringify({ userId: "too-late" }), { ...json, "connect-timeout-ms": "0" });
    expect(late.status).toBe(504);
    expect(JSON.parse(late.body.toString())).toMatchObject({ code: "deadline_exceeded" });
    const status = await call("GetStatus", JSON.stringify({ userId: "too-late" }));
    expect(JSON.parse(status.body.toString())).toMatchObject({ status: "RESERVATION_STATUS_NOT_FOUND" });
  });

  it("differs from connect-node where the client is at fault: a binary message that does not decode is the client's fault (400, where connect-node says 500), compressed or not", async () => {
    const truncated = Buffer.from([0x0a, 0x09, 0x61]); // field 1, 9 bytes announced, 1 sent
    const proto = { "content-type": "application/proto" };
    expect((await call("GetStatus", truncated, proto)).status).toBe(400);
    expect((await call("GetStatus", truncated, proto, true)).status).toBe(500);
    expect((await call("GetStatus", gzipSync(truncated), { ...proto, "content-encoding": "gzip" })).status).toBe(400);
    expect((await call("GetStatus", gzipSync(truncated), { ...proto, "content-encoding": "gzip" }, true)).status).toBe(500);
  });

  it("compresses an answer of 1 KiB or more as the client accepts, as connect-node does", async () => {
    const admin = { ...json, "x-token": TEST_ADMIN_TOKEN };
    for (let i = 0; i < 12; i++) await call("CreateEvent", JSON.stringify({ eventId: `train-${i}`, name: `KTX ${i} Seoul to Busan, the morning of the sale`, capacity: 10 }), admin);
    const accepting = { ...json, "accept-encoding": "gzip, deflate, br", "x-request-id": "lean-connect-4" };
    const { lean, viaConnectNode } = await bothPaths("ListEvents", "{}", accepting);
    expect(lean.headers["content-encoding"]).toBe("gzip");
    expect(lean).toEqual(viaConnectNode);
    // A small answer goes as it is.
    const small = await call("GetEvent", JSON.stringify({ eventId: "default" }), accepting);
    expect(small.headers["content-encoding"]).toBeUndefined();
    expect(small.status).toBe(200);
  });

  it("refuses a body over 64 KiB with RESOURCE_EXHAUSTED (429) and closes the connection, and a deadline passes with DEADLINE_EXCEEDED (504) while Redis hangs", async () => {
    const big = await call("Reserve", JSON.stringify({ userId: "x".repeat(70_000) }));
    expect(big.status).toBe(429);
    expect(JSON.parse(big.body.toString())).toMatchObject({ code: "resource_exhausted" });
    expect(big.headers.connection).toBe("close");

    env.redis.pause();
    try {
      const started = performance.now();
      const late = await call("GetStatus", JSON.stringify({ userId: "alice" }), { ...json, "connect-timeout-ms": "200" });
      expect(late.status).toBe(504);
      expect(JSON.parse(late.body.toString())).toMatchObject({ code: "deadline_exceeded" });
      // (before the Redis command's own timeout of 1 s, which would answer UNAVAILABLE)
    expect(performance.now() - started).toBeLessThan(5000);
    } finally {
      env.redis.resume();
    }
    expect((await call("GetStatus", JSON.stringify({ userId: "alice" }))).status).toBe(200);
  });

  it("a deadline that passes while the body is still coming over HTTP/1.1: 504 with connection: close, and the connection ends at once", async () => {
    const socket = connect(env.svc.port, "127.0.0.1");
    let answer = "";
    socket.on("data", (chunk: Buffer) => (answer += chunk.toString("latin1")));
    const closed = new Promise<void>((r) => socket.once("close", () => r()));
    const started = performance.now();
    socket.write(`POST ${SERVICE}/GetStatus HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nconnect-timeout-ms: 300\r\ncontent-length: 100\r\n\r\n{"user`);
    await closed;
    expect(answer).toMatch(/^HTTP\/1\.1 504 /);
    expect(answer.toLowerCase()).toContain("connection: close");
    // Not the request timeout's 408 many seconds later.
    expect(performance.now() - started).toBeLessThan(5000);
  });

  it("a client that leaves mid-call, and hundreds of malformed calls at once, leave the service answering", async () => {
    env.redis.pause();
    const leaving = new AbortController();
    const left = fetch(`${env.svc.baseUrl}${SERVICE}/GetStatus`, { method: "POST", headers: json, body: JSON.stringify({ userId: "alice" }), signal: leaving.signal }).catch((err: unknown) => err);
    await new Promise((r) => setTimeout(r, 100));
    leaving.abort();
    expect(await left).toBeInstanceOf(Error);
    env.redis.resume();
    const junk = ["", "{", "[]", "null", '{"userId":{}}', '{"partySize":-1}', "\u0000\u0001", "x".repeat(1000), '{"userId":"' + "\ud800" + '"}'];
    const answers = await Promise.all(Array.from({ length: 300 }, (_, i) => call(i % 2 ? "Reserve" : "GetStatus", junk[i % junk.length] ?? "", i % 3 ? json : { "content-type": "application/proto" })));
    for (const a of answers) expect(a.status).toBeLessThan(500);
    expect((await call("Health", "{}")).status).toBe(200);
  });
});
