import { request } from "node:http";
import { connect } from "node:net";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { codeToHttpStatus } from "@connectrpc/connect/protocol-connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { describe, expect, it } from "vitest";
import { TicketQueueService } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { rawRequest } from "./helpers/raw-http.js";
import { startTestService, TEST_ADMIN_TOKEN, useTestService } from "./helpers/service.js";

const env = useTestService();

const big = "x".repeat(70 * 1024);

// [what, method, path, body, expected HTTP status, expected Connect error code]
const restCases: [string, string, string, string | undefined, number, string][] = [
  ["malformed JSON", "POST", "/reserve", '{"user_id": ', 400, "invalid_argument"],
  ["JSON that is not an object", "POST", "/reserve", "[1,2]", 400, "invalid_argument"],
  ["unknown field", "POST", "/reserve", '{"user_id": "a", "seat": 3}', 400, "invalid_argument"],
  ["wrong field type", "POST", "/reserve", '{"user_id": 42}', 400, "invalid_argument"],
  ["user_id over 128 bytes", "POST", "/reserve", JSON.stringify({ user_id: "é".repeat(65) }), 400, "invalid_argument"],
  ["user_id with a control character", "POST", "/reserve", JSON.stringify({ user_id: "a\u0007b" }), 400, "invalid_argument"],
  ["body over 64 KiB", "POST", "/reserve", JSON.stringify({ user_id: big }), 413, "resource_exhausted"],
  ["status of an over-long id", "GET", `/status/${"y".repeat(129)}`, undefined, 400, "invalid_argument"],
  ["status of an id with a newline", "GET", "/status/a%0Ab", undefined, 400, "invalid_argument"],
  ["broken percent-encoding", "GET", "/status/%E0%A4%A", undefined, 400, "invalid_argument"],
  ["no route, a broken segment in it", "GET", "/v1/events/%ZZ/nonexistent", undefined, 404, "not_found"],
  ["unknown query parameter", "GET", "/status/a?foo=1", undefined, 400, "invalid_argument"],
  ["a path field again in the query", "GET", "/status/a?user_id=someone-else", undefined, 400, "invalid_argument"],
  ["an event path field again in the query", "GET", "/v1/events/default?event_id=other", undefined, 400, "invalid_argument"],
  ["a user id no URL can name (\"..\")", "POST", "/reserve", '{"user_id":".."}', 400, "invalid_argument"],
  ["a user id no URL can name (\".\")", "POST", "/v1/events/default/reserve", '{"user_id":"."}', 400, "invalid_argument"],
  ["bytes that are not UTF-8 in a body", "POST", "/reserve", '{"user_id":"bad\ufffdid"}', 400, "invalid_argument"],
  ["bytes that are not UTF-8 in a query", "GET", "/v1/events/default/watch?user_id=bad%FEid", undefined, 400, "invalid_argument"],
  ["POST on a GET path", "POST", "/health", "{}", 405, "unimplemented"],
  ["wrong method", "GET", "/reserve", undefined, 405, "unimplemented"],
  ["unknown path", "GET", "/nowhere", undefined, 404, "not_found"],
  ["missing admin token", "POST", "/process_queue", undefined, 401, "unauthenticated"],
  ["wrong admin token", "POST", "/admin/reset", "{}", 401, "unauthenticated"],
];

describe("REST gateway: bad input gets a clear error, never a 500", () => {
  it.each(restCases)("%s → %i", async (_what, method, path, body, status, code) => {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (path === "/admin/reset") headers["x-token"] = "wrong";
    const res = await fetch(env.svc.baseUrl + path, { method, headers, body });
    expect(res.status).toBe(status);
    const json = (await res.json()) as { code?: string; message?: string };
    if (code !== "") {
      expect(json.code).toBe(code);
      expect(json.message).toBeTruthy();
    }
    if (_what.startsWith("bytes that are not UTF-8")) expect(json.message).toContain("contains U+FFFD");
    if (_what.startsWith("a user id no URL can name")) expect(json.message).toContain('cannot be "." or ".."');
  });

  it("routes on the path as sent: a dot segment, even percent-encoded, or a backslash is refused, not resolved into another path", async () => {
    const admin = { "x-token": TEST_ADMIN_TOKEN, "content-length": "0" };
    for (const path of ["/v1/events/x/%2E%2E/%2e%2e/%2e%2e/admin/reset", "/v1/events/x/../../../admin/reset", "/x/%2e/process_queue", "/status/a\\b", "/v1/events/default/.%2E/..", "/process_queue#x"]) {
      const res = await rawRequest(env.svc.port, "POST", path, admin);
      expect(res.status, path).toBe(400);
      expect((JSON.parse(res.body.toString()) as { message: string }).message, path).toBe("the request path has a dot segment, a backslash or a fragment");
    }
    // Nothing was reset; a dot inside a segment is an ordinary character.
    expect((await fetch(`${env.svc.baseUrl}/status/a.b..c`)).status).toBe(200);
  });

  it("text shown to others (a train's name, an announcement) refuses control and bidi characters", async () => {
    const create = (name: string) =>
      fetch(`${env.svc.baseUrl}/v1/events`, { method: "POST", headers: { "content-type": "application/json", "x-token": TEST_ADMIN_TOKEN }, body: JSON.stringify({ event_id: "shown", capacity: 5, name }) });
    for (const name of ["\u202e evil", "a\u0000b", "two\nlines", "bad\ufffd"]) {
      const res = await create(name);
      expect(res.status, name).toBe(400);
      expect(((await res.json()) as { message: string }).message).toContain("name must be one line of at most 200 characters, without control or bidi characters");
    }
    expect((await create("KTX 101 서울→부산 ❤️")).status).toBe(200);
  });

  it("a body over 64 KiB sent chunked (no content-length) still gets its answer: 413 for REST, RESOURCE_EXHAUSTED for gRPC-web", async () => {
    const chunked = (path: string, contentType: string): Promise<{ status: number; body: Buffer }> =>
      new Promise((resolve, reject) => {
        const req = request({ host: "127.0.0.1", port: env.svc.port, path, method: "POST", headers: { "content-type": contentType } }, (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        });
        req.on("error", reject);
        // Sent in pieces as it goes; the server stops reading past its limit.
        for (let i = 0; i < 100; i++) req.write(Buffer.alloc(64 * 1024, 0x20));
        req.end();
      });
    const rest = await chunked("/reserve", "application/json");
    expect(rest.status).toBe(413);
    expect(JSON.parse(rest.body.toString())).toMatchObject({ code: "resource_exhausted" });
    const web = await chunked("/ticketqueue.v1.TicketQueueService/Reserve", "application/grpc-web+proto");
    expect(web.status).toBe(200);
    expect(web.body.toString("latin1")).toMatch(/grpc-status: 8\r\n/);
  });

  it("still serves the connection after a 413", async () => {
    const res = await fetch(`${env.svc.baseUrl}/health`);
    expect(res.status).toBe(200);
  });
});

describe("RPC transports", () => {
  it("a message over 64 KiB is ResourceExhausted over gRPC and Connect", async () => {
    for (const transport of [createGrpcTransport({ baseUrl: env.svc.baseUrl }), createConnectTransport({ baseUrl: env.svc.baseUrl, httpVersion: "1.1" })]) {
      const client = createClient(TicketQueueService, transport);
      await expect(client.reserve({ userId: big })).rejects.toSatisfy((err) => ConnectError.from(err).code === Code.ResourceExhausted);
    }
  });

  it("Connect JSON keeps Connect's default of ignoring unknown fields", async () => {
    const res = await fetch(`${env.svc.baseUrl}/ticketqueue.v1.TicketQueueService/Reserve`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ userId: "connect-json", seat: 3 }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ userId: "connect-json" });
  });

  it("an HTTP/1.0 Connect call without a Host header is answered: POST on the lean path, GET (connect-node's) InvalidArgument (400), where it used to throw where nothing caught it", async () => {
    const exchange = (request: string): Promise<string> =>
      new Promise<string>((resolve, reject) => {
        const socket = connect(env.svc.port, "127.0.0.1");
        let text = "";
        socket.on("data", (chunk: Buffer) => (text += chunk.toString()));
        socket.on("close", () => resolve(text));
        socket.on("error", reject);
        // Not half-closed: node aborts a request whose client ended its side before the answer.
        socket.write(request);
      });
    const post = await exchange("POST /ticketqueue.v1.TicketQueueService/Health HTTP/1.0\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}");
    expect(post).toMatch(/^HTTP\/1\.[01] 200 /);
    expect(post).toContain('"redisOk":true');
    const get = await exchange(`GET /ticketqueue.v1.TicketQueueService/Health?encoding=json&message=${encodeURIComponent("{}")} HTTP/1.0\r\n\r\n`);
    expect(get).toMatch(/^HTTP\/1\.[01] 400 /);
    expect(get).toContain('"code":"invalid_argument"');
    // A Connect GET is for unary RPCs: a stream's GET is refused by Connect (405), its message not even decoded.
    const streamGet = await fetch(`${env.svc.baseUrl}/ticketqueue.v1.TicketQueueService/WatchStatus?encoding=proto&base64=1&message=_w`);
    expect(streamGet.status).toBe(405);
  });

  it("a Connect stream's request message flagged compressed with no compression named is InvalidArgument, not Internal (logged as a server fault)", async () => {
    const envelope = Buffer.from([1, 0, 0, 0, 1, 0]);
    const res = await fetch(`${env.svc.baseUrl}/ticketqueue.v1.TicketQueueService/WatchStatus`, { method: "POST", headers: { "content-type": "application/connect+proto" }, body: envelope });
    const body = Buffer.from(await res.arrayBuffer());
    expect(body[0]).toBe(2);
    expect(JSON.parse(body.subarray(5).toString())).toMatchObject({ error: { code: "invalid_argument" } });
  });

  it.each([
    ["a truncated field", [0x0a, 0xff]],
    ["an illegal wire type", [0x57]],
  ])("a Connect stream's request message that does not decode (%s) is InvalidArgument, named as over gRPC, not Internal with the decoder's words", async (_what, bytes) => {
    const envelope = Buffer.concat([Buffer.from([0, 0, 0, 0, bytes.length]), Buffer.from(bytes)]);
    const res = await fetch(`${env.svc.baseUrl}/ticketqueue.v1.TicketQueueService/WatchStatus`, { method: "POST", headers: { "content-type": "application/connect+proto" }, body: envelope });
    // A stream's error comes in its end-stream message (flag 2), JSON after the 5-byte prefix.
    const body = Buffer.from(await res.arrayBuffer());
    expect(body[0]).toBe(2);
    expect(JSON.parse(body.subarray(5).toString())).toMatchObject({ error: { code: "invalid_argument", message: expect.stringMatching(/^cannot decode ticketqueue\.v1\.WatchStatusRequest: /) } });
  });

  it("malformed Connect JSON is InvalidArgument (400)", async () => {
    const res = await fetch(`${env.svc.baseUrl}/ticketqueue.v1.TicketQueueService/Reserve`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{nope",
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ code: "invalid_argument" });
  });
});

describe("error codes map to the documented HTTP statuses", () => {
  it.each([
    [Code.InvalidArgument, 400],
    [Code.Unauthenticated, 401],
    [Code.PermissionDenied, 403],
    [Code.NotFound, 404],
    [Code.FailedPrecondition, 400],
    [Code.ResourceExhausted, 429],
    [Code.Unavailable, 503],
  ])("code %i → %i", (code, status) => {
    expect(codeToHttpStatus(code)).toBe(status);
  });
});

describe("request ids", () => {
  it("answer every call with x-request-id: the caller's when usable, else a new one", async () => {
    const mine = await fetch(`${env.svc.baseUrl}/health`, { headers: { "x-request-id": "req-123.abc" } });
    expect(mine.headers.get("x-request-id")).toBe("req-123.abc");
    const fresh = await fetch(`${env.svc.baseUrl}/health`, { headers: { "x-request-id": "bad id\twith spaces" } });
    expect(fresh.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    const failed = await fetch(`${env.svc.baseUrl}/reserve`, { method: "POST", body: JSON.stringify({ user_id: "\u0001" }), headers: { "x-request-id": "failing-1" } });
    expect(failed.status).toBe(400);
    expect(failed.headers.get("x-request-id")).toBe("failing-1");
    const client = createClient(TicketQueueService, createGrpcTransport({ baseUrl: env.svc.baseUrl }));
    let seen: string | null = null;
    await client.health({}, { headers: { "x-request-id": "grpc-1" }, onHeader: (h) => (seen = h.get("x-request-id")) });
    expect(seen).toBe("grpc-1");
  });
});

describe("connection limit", () => {
  it("refuses connections past MAX_CONNECTIONS and serves again once they close", async () => {
    const { connect } = await import("node:net");
    const limited = await startTestService(env.redis.url, { limits: { maxConnections: 3 } });
    try {
      const open = await Promise.all(
        Array.from({ length: 3 }, () => new Promise<import("node:net").Socket>((resolve) => {
          const s = connect(limited.port, "127.0.0.1", () => resolve(s));
        })),
      );
      await new Promise((r) => setTimeout(r, 50));
      const refused = await new Promise<boolean>((resolve) => {
        const s = connect(limited.port, "127.0.0.1");
        s.on("close", () => resolve(true));
        s.on("error", () => resolve(true));
        s.setTimeout(2000, () => (s.destroy(), resolve(false)));
        s.write("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
      });
      expect(refused).toBe(true);
      open.forEach((s) => s.destroy());
      let status = 0;
      for (let i = 0; i < 40 && status !== 200; i++) {
        await new Promise((r) => setTimeout(r, 50));
        status = await fetch(`${limited.baseUrl}/health`).then((r) => r.status, () => 0);
      }
      expect(status).toBe(200);
    } finally {
      await limited.close();
    }
  });
});
