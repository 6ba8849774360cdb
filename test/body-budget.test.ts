import { randomBytes } from "node:crypto";
import * as http2 from "node:http2";
import { connect, type Socket } from "node:net";
import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { rawRequest } from "./helpers/raw-http.js";
import { useTestService } from "./helpers/service.js";
import { until } from "./helpers/wait.js";

// Unfinished request bodies of one process share a budget (16 KiB here): clients
// that each send most of a body and never the rest cannot hold more, on any path.
const BUDGET = 16 * 1024;
const env = useTestService({ limits: { maxBufferedRequestBytes: BUDGET } });

const RESERVE = "/ticketqueue.v1.TicketQueueService/Reserve";
const HELD = 3000;
const grpcHeaders = { ":path": RESERVE, "content-type": "application/grpc", te: "trailers" };

/** An HTTP/1.1 request announcing 4,000 bytes of body and sending only `HELD` of them. */
function holdBody(port: number, method: string, path: string, contentType: string): Socket {
  const socket = connect(port, "127.0.0.1");
  socket.on("error", () => undefined);
  socket.write(`${method} ${path} HTTP/1.1\r\nhost: x\r\ncontent-type: ${contentType}\r\ncontent-length: 4000\r\n\r\n`);
  socket.write(Buffer.alloc(HELD, 0x20));
  return socket;
}

/** A JSON object padded with spaces to `size` bytes. */
function paddedJson(size: number): string {
  return "{}" + " ".repeat(size - 2);
}

/**
 * A gRPC(-web) frame of about `size` bytes whose message is an empty Reserve
 * padded with an unknown field (kept, not refused); random bytes, so that
 * compressed it is no smaller.
 */
function paddedFrame(size: number, compressed = false): Buffer {
  // Field 15, wire type 2 (bytes): tag, a two-byte length, the bytes.
  const payloadLength = size - 5 - 3;
  const message = Buffer.concat([Buffer.from([(15 << 3) | 2, (payloadLength & 0x7f) | 0x80, payloadLength >> 7]), randomBytes(payloadLength)]);
  const body = compressed ? gzipSync(message) : message;
  const frame = Buffer.alloc(5 + body.length);
  frame[0] = compressed ? 1 : 0;
  frame.writeUInt32BE(body.length, 1);
  body.copy(frame, 5);
  return frame;
}

function h2Call(port: number, headers: http2.OutgoingHttpHeaders, body: Buffer): Promise<{ headers: http2.IncomingHttpHeaders; trailers: http2.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on("error", reject);
    const stream = session.request({ ":method": "POST", ...headers });
    let head: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    stream.on("response", (h) => (head = h));
    stream.on("trailers", (t) => (trailers = t));
    stream.on("data", () => undefined);
    stream.on("error", reject);
    stream.on("close", () => {
      session.close();
      resolve({ headers: head, trailers });
    });
    stream.end(body);
  });
}

/** A Connect JSON Reserve on the session; its response headers. */
function connectJson(session: http2.ClientHttp2Session, body: string): Promise<http2.IncomingHttpHeaders> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ":method": "POST", ":path": RESERVE, "content-type": "application/json" });
    stream.on("response", resolve);
    stream.on("error", reject);
    stream.on("data", () => undefined);
    stream.end(body);
  });
}

describe("the budget of unfinished request bodies", () => {
  it("refuses requests past it on every path, each in its own protocol (REST 429, gRPC-web and gRPC status 8, Connect resource_exhausted), and gets every byte back", async () => {
    const { port, baseUrl } = env.svc;
    // Five bodies left unfinished, one on each path that reads bodies: 15,000 of the 16,384 bytes.
    const holders = [
      holdBody(port, "POST", "/reserve", "application/json"), // the REST gateway
      holdBody(port, "POST", RESERVE, "application/grpc-web+proto"), // the lean gRPC-web path
      holdBody(port, "POST", RESERVE, "application/json"), // Connect JSON (connect-node)
      holdBody(port, "POST", RESERVE, "application/proto"), // Connect binary (read before connect-node)
      holdBody(port, "GET", "/health", "text/plain"), // a body on a method that takes none
    ];
    try {
      // Each holder's bytes have arrived when a 2,000-byte body no longer fits.
      expect(await until(async () => (await rawRequest(port, "POST", "/reserve", { "content-type": "application/json" }, paddedJson(2000))).status === 429)).toBe(true);

      const rest = await rawRequest(port, "POST", "/reserve", { "content-type": "application/json" }, paddedJson(2000));
      expect(rest.status).toBe(429);
      expect(JSON.parse(rest.body.toString())).toMatchObject({ code: "resource_exhausted" });
      // The rest of its body was not read: the connection is not kept.
      expect(rest.headers.connection).toBe("close");

      const web = await rawRequest(port, "POST", RESERVE, { "content-type": "application/grpc-web+proto" }, paddedFrame(2000).toString("latin1"));
      expect(web.status).toBe(200);
      expect(web.body.toString("latin1")).toMatch(/grpc-status: 8\r\n/);

      const connectJson = await rawRequest(port, "POST", RESERVE, { "content-type": "application/json" }, paddedJson(2000));
      expect(connectJson.status).toBe(429);
      expect(JSON.parse(connectJson.body.toString())).toMatchObject({ code: "resource_exhausted" });

      const connectBinary = await rawRequest(port, "POST", RESERVE, { "content-type": "application/proto" }, paddedFrame(2000).subarray(5).toString("latin1"));
      expect(connectBinary.status).toBe(429);

      // HTTP/2: lean gRPC, and a compressed gRPC call (connect-node's gRPC, its status in the trailers).
      expect((await h2Call(port, grpcHeaders, paddedFrame(2000))).headers["grpc-status"]).toBe("8");
      const gzipped = await h2Call(port, { ...grpcHeaders, "grpc-encoding": "gzip" }, paddedFrame(2000, true));
      expect(gzipped.headers["grpc-status"] ?? gzipped.trailers["grpc-status"]).toBe("8");
      // A small request still fits.
      expect((await fetch(`${baseUrl}/reserve`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" })).status).toBe(200);
    } finally {
      // The holders leave: all of the budget comes back (a body of 15,000 bytes fits again).
      for (const socket of holders) socket.destroy();
    }
    expect(await until(async () => (await rawRequest(port, "POST", "/reserve", { "content-type": "application/json" }, paddedJson(15_000))).status === 200)).toBe(true);
    expect((await h2Call(port, grpcHeaders, paddedFrame(15_000))).headers["grpc-status"]).toBeUndefined();
    const big = await h2Call(port, { ...grpcHeaders, "grpc-encoding": "gzip" }, paddedFrame(15_000, true));
    expect(big.trailers["grpc-status"]).toBe("0");
  });

  it("a refused HTTP/2 request leaves its connection serving", async () => {
    const { port } = env.svc;
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on("error", () => undefined);
    // An HTTP/2 body held unfinished on the Connect path: 15,000 bytes of a 16,000-byte body.
    const holder = session.request({ ":method": "POST", ":path": RESERVE, "content-type": "application/json", "content-length": "16000" }, { endStream: false });
    holder.on("error", () => undefined);
    holder.on("data", () => undefined);
    holder.write(Buffer.alloc(15_000, 0x20));
    expect(await until(async () => (await rawRequest(port, "POST", "/reserve", { "content-type": "application/json" }, paddedJson(2000))).status === 429)).toBe(true);
    // Refused on the same connection, then the holder is cancelled: the next call there is served.
    expect((await connectJson(session, paddedJson(2000)))[":status"]).toBe(429);
    holder.close(http2.constants.NGHTTP2_CANCEL);
    expect(await until(async () => (await rawRequest(port, "POST", "/reserve", { "content-type": "application/json" }, paddedJson(15_000))).status === 200)).toBe(true);
    expect((await connectJson(session, "{}"))[":status"]).toBe(200);
    session.close();
  });
});
