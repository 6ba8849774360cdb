import * as http2 from "node:http2";
import { Agent, request } from "node:http";
import { connect } from "node:net";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { eventKeys } from "../src/queue/keys.js";
import { TEST_ADMIN_TOKEN, useTestService } from "./helpers/service.js";

// Random and malformed input at every door: the REST gateway, Connect, gRPC
// framing and raw TCP. Never a 5xx, an internal error, a crash or a hang; and the
// queue's invariants still hold afterwards.

const env = useTestService({ capacity: 3 });

const ANSWER_WITHIN_MS = 5000;
const methods = ["Reserve", "GetStatus", "Cancel", "Confirm", "ProcessQueue", "Reset", "CreateEvent", "UpdateEvent", "GetEvent", "ListEvents", "Health", "Nope"];
const text = fc.oneof(fc.string(), fc.string({ unit: "grapheme" }), fc.string({ unit: "binary", maxLength: 300 }), fc.constantFrom("", "default", "../..", "%00", "{x}", "a".repeat(200)));
const jsonValue = fc.jsonValue({ maxDepth: 4 });
const body = fc.oneof(
  jsonValue.map((v) => Buffer.from(JSON.stringify(v))),
  fc.record({ user_id: text, event_id: text, ticket: text, capacity: fc.oneof(fc.integer(), fc.double(), text) }, { requiredKeys: [] }).map((v) => Buffer.from(JSON.stringify(v))),
  text.map((s) => Buffer.from(s)),
  fc.uint8Array({ maxLength: 400 }).map((a) => Buffer.from(a)),
);

const history: string[] = [];
function http1(method: string, path: string, headers: Record<string, string>, payload: Buffer): Promise<number> {
  history.push(`${method} ${path} ${JSON.stringify(headers)} ${payload.length}b`);
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port: env.svc.port, path, method, headers, timeout: ANSWER_WITHIN_MS }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("timeout", () => req.destroy(new Error(`no answer to ${method} ${path} within ${ANSWER_WITHIN_MS} ms`)));
    req.on("error", (e) => reject(new Error(`${e.message} after: ${history.slice(-3).join(" | ")}`)));
    req.end(method === "GET" || method === "HEAD" ? undefined : payload);
  });
}

let session: http2.ClientHttp2Session | undefined;
function grpc(path: string, headers: Record<string, string>, payload: Buffer): Promise<{ status: number; grpcStatus?: string; grpcMessage?: string }> {
  session ??= http2.connect(env.svc.baseUrl);
  const s = session;
  return new Promise((resolve, reject) => {
    const stream = s.request({ ":method": "POST", ":path": path, te: "trailers", ...headers });
    const timer = setTimeout(() => reject(new Error(`no gRPC answer on ${path} within ${ANSWER_WITHIN_MS} ms`)), ANSWER_WITHIN_MS);
    let answer: { status: number; grpcStatus?: string; grpcMessage?: string } = { status: 0 };
    const take = (h: http2.IncomingHttpHeaders): void => {
      if (h[":status"]) answer.status = Number(h[":status"]);
      if (typeof h["grpc-status"] === "string") answer = { ...answer, grpcStatus: h["grpc-status"], grpcMessage: String(h["grpc-message"] ?? "") };
    };
    stream.on("response", take);
    stream.on("trailers", take);
    stream.on("data", () => undefined);
    stream.on("close", () => {
      clearTimeout(timer);
      resolve(answer);
    });
    stream.on("error", () => undefined);
    stream.end(payload);
  });
}

/** A length-prefixed message as gRPC and gRPC-web frame it: flags, 4-byte length, bytes. */
function lengthPrefixed(flags: number, bytes: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header[0] = flags;
  header.writeUInt32BE(bytes.length, 1);
  return Buffer.concat([header, bytes]);
}

/** Request bodies for either framing: raw bytes, a random flags byte and length, or a well-framed random protobuf. */
const randomFrames = fc.oneof(
  fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)),
  fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.uint8Array({ maxLength: 200 })).map(([flag, length, bytes]) => {
    const header = Buffer.alloc(5);
    header[0] = flag;
    header.writeUInt32BE(length, 1);
    return Buffer.concat([header, bytes]);
  }),
  fc.uint8Array({ maxLength: 200 }).map((bytes) => lengthPrefixed(0, Buffer.from(bytes))),
);

/** A gRPC-web call over HTTP/1.1; the status comes from the trailer frame of the body (or the headers). */
function grpcWeb(agent: Agent, path: string, headers: Record<string, string>, payload: Buffer): Promise<{ status: number; grpcStatus?: string; grpcMessage?: string }> {
  history.push(`gRPC-web ${path} ${JSON.stringify(headers)} ${payload.length}b`);
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port: env.svc.port, path, method: "POST", headers, agent, timeout: ANSWER_WITHIN_MS }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const body = Buffer.concat(chunks);
        let trailer = "";
        for (let at = 0; at + 5 <= body.length; ) {
          const length = body.readUInt32BE(at + 1);
          if (((body[at] ?? 0) & 0x80) !== 0) trailer = body.subarray(at + 5, at + 5 + length).toString();
          at += 5 + length;
        }
        const field = (name: string): string | undefined => {
          const header = res.headers[name];
          if (typeof header === "string") return header;
          return new RegExp(`^${name}: ?(.*)$`, "m").exec(trailer)?.[1]?.trim();
        };
        resolve({ status: res.statusCode ?? 0, grpcStatus: field("grpc-status"), grpcMessage: field("grpc-message") });
      });
    });
    req.on("timeout", () => req.destroy(new Error(`no answer to gRPC-web ${path} within ${ANSWER_WITHIN_MS} ms`)));
    req.on("error", (e) => reject(new Error(`${e.message} after: ${history.slice(-3).join(" | ")}`)));
    req.end(payload);
  });
}

describe("fuzzing", () => {
  it("the REST gateway and Connect never answer 5xx nor hang", async () => {
    const restPath = fc.oneof(
      fc.constantFrom("/reserve", "/health", "/process_queue", "/admin/reset", "/v1/events", "/.well-known/jwks.json", "/metrics"),
      text.map((s) => `/status/${encodeURIComponent(s)}`),
      fc.tuple(text, fc.constantFrom("reserve", "status/x", "cancel", "confirm", "watch", "process_queue", "reset", "admin/cancel", "")).map(([e, tail]) => `/v1/events/${encodeURIComponent(e)}/${tail}`),
      fc.webPath(),
      fc.webUrl().map((u) => u), // absolute-form targets, as sent to proxies
      text.map((s) => `/${s.replace(/[^\x21-\x7e]/g, "")}`),
    );
    const connectPath = fc.constantFrom(...methods).map((m) => `/ticketqueue.v1.TicketQueueService/${m}`);
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("GET", "POST", "PATCH", "PUT", "DELETE", "OPTIONS", "HEAD"),
        fc.oneof(restPath, connectPath),
        fc.constantFrom("application/json", "application/proto", "application/connect+json", "text/plain", "application/grpc-web+proto", "", "application/json; charset=latin1"),
        fc.boolean(),
        body,
        async (method, path, contentType, admin, payload) => {
          const headers: Record<string, string> = contentType ? { "content-type": contentType } : {};
          if (admin) headers["x-token"] = TEST_ADMIN_TOKEN;
          const status = await http1(method, path, headers, payload);
          expect(status, `${method} ${path} ${contentType}`).toBeGreaterThanOrEqual(200);
          expect(status, `${method} ${path} ${contentType}`).toBeLessThan(500);
        },
      ),
      { numRuns: 400 },
    );
  });

  it("gRPC framing: random frames, flags, lengths and headers get a gRPC status, never an internal error", async () => {
    const frame = randomFrames;
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...methods),
        fc.constantFrom("application/grpc", "application/grpc+proto", "application/grpc+json", "application/grpc-web", "application/grpc+foo"),
        fc.option(fc.oneof(fc.constantFrom("1S", "100m", "0n", "99999999H", "x", "-1m", ""), fc.string({ maxLength: 12 }))),
        fc.option(fc.constantFrom("gzip", "identity", "br", "snappy")),
        frame,
        async (method, contentType, timeout, encoding, payload) => {
          const headers: Record<string, string> = { "content-type": contentType };
          if (timeout !== null) headers["grpc-timeout"] = timeout;
          if (encoding !== null) headers["grpc-encoding"] = encoding;
          const a = await grpc(`/ticketqueue.v1.TicketQueueService/${method}`, headers, payload);
          expect(a.status).toBeLessThan(500);
          if (a.status === 200 && !contentType.startsWith("application/grpc-web")) {
            expect(a.grpcStatus, `${method} ${contentType} ${payload.toString("hex").slice(0, 40)}`).toBeDefined();
            expect(a.grpcMessage).not.toMatch(/^internal error/);
          }
        },
      ),
      { numRuns: 400 },
    );
    session?.close();
  });

  it("gRPC-web over HTTP/1.1 keep-alive: random frames, lengths, timeouts and sizes get a status in a trailer frame, never an internal error", async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const frame = fc.oneof(
      randomFrames,
      fc.constantFrom(lengthPrefixed(0, Buffer.alloc(70_000)), Buffer.concat([lengthPrefixed(0, Buffer.alloc(0)), lengthPrefixed(0, Buffer.alloc(0))]), lengthPrefixed(0x80, Buffer.from("grpc-status: 0\r\n"))),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...methods),
        fc.constantFrom("application/grpc-web", "application/grpc-web+proto", "APPLICATION/GRPC-WEB+PROTO"),
        fc.option(fc.oneof(fc.constantFrom("1S", "100m", "0n", "99999999H", "x", "-1m", ""), fc.string({ maxLength: 12 }))),
        fc.option(fc.constantFrom("gzip", "identity", "br")),
        frame,
        async (method, contentType, timeout, encoding, payload) => {
          const headers: Record<string, string> = { "content-type": contentType, "x-grpc-web": "1" };
          if (timeout !== null) headers["grpc-timeout"] = timeout;
          if (encoding !== null) headers["grpc-encoding"] = encoding;
          const a = await grpcWeb(agent, `/ticketqueue.v1.TicketQueueService/${method}`, headers, payload);
          expect(a.status).toBeLessThan(500);
          if (a.status === 200) {
            const label = `${method} ${contentType} ${payload.toString("hex").slice(0, 40)}`;
            expect(a.grpcStatus, label).toBeDefined();
            expect(a.grpcMessage ?? "", label).not.toMatch(/^internal error/);
            // Too large, when nothing else is wrong first (a bad grpc-timeout is refused before the body is read).
            if (payload.length > 65_536 + 5 && method !== "Nope" && timeout === null && (encoding === null || encoding === "identity")) expect(a.grpcStatus, label).toBe("8");
          }
        },
      ),
      { numRuns: 300 },
    );
    // The kept-alive connection (or its replacement) still serves a Reserve.
    const ok = await grpcWeb(agent, "/ticketqueue.v1.TicketQueueService/Reserve", { "content-type": "application/grpc-web+proto" }, lengthPrefixed(0, Buffer.alloc(0)));
    expect(ok.grpcStatus).toBe("0");
    agent.destroy();
  });

  it("raw bytes on the port do not hurt the server", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 300 }), async (bytes) => {
        await new Promise<void>((resolve) => {
          const socket = connect(env.svc.port, "127.0.0.1", () => socket.end(Buffer.from(bytes)));
          socket.on("data", () => undefined);
          socket.setTimeout(300, () => socket.destroy());
          socket.on("close", () => resolve());
          socket.on("error", () => resolve());
        });
      }),
      { numRuns: 100 },
    );
  });

  it("leaves a healthy service and an intact queue", async () => {
    expect((await fetch(`${env.svc.baseUrl}/health`)).status).toBe(200);
    for (const eventId of await env.svc.store.eventIds()) {
      const [, seatsKey = "", waitingKey = ""] = eventKeys(env.svc.prefix, eventId);
      const info = await env.svc.store.getEvent(eventId).catch(() => undefined);
      if (!info) continue;
      const seated = await env.svc.redis.hkeys(seatsKey);
      expect(seated.length).toBeLessThanOrEqual(info.capacity);
      if (seated.length > 0) expect((await env.svc.redis.zmscore(waitingKey, ...seated)).every((s) => s === null)).toBe(true);
      if (seated.length < info.capacity) expect(await env.svc.redis.zcard(waitingKey)).toBe(0);
    }
  });
});
