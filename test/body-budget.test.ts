import { randomBytes } from "node:crypto";
import * as http2 from "node:http2";
import { connect, type Socket } from "node:net";
import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { rawRequest } from "./helpers/raw-http.js";
import { BodyBudget } from "../src/server/body-budget.js";
import { sample, scrape } from "./helpers/metrics.js";
import { TEST_ADMIN_TOKEN, useTestService } from "./helpers/service.js";
import { until } from "./helpers/wait.js";

// Unfinished request bodies of one process share a budget (16 KiB here): clients
// that each send most of a body and never the rest cannot hold more, on any path,
// nor keep others out: the oldest unfinished bodies are cut to make room.
const BUDGET = 16 * 1024;
const env = useTestService({ limits: { maxBufferedRequestBytes: BUDGET } });

const RESERVE = "/ticketqueue.v1.TicketQueueService/Reserve";
const HELD = 3000;
const grpcHeaders = { ":path": RESERVE, "content-type": "application/grpc", te: "trailers" };

/** An HTTP/1.1 request announcing 4,000 bytes of body and sending only `HELD` of them (starting with `first`); `closed` once the server cuts it. */
function holdBody(port: number, method: string, path: string, contentType: string, first = Buffer.alloc(0)): { socket: Socket; closed: Promise<string> } {
  const socket = connect(port, "127.0.0.1");
  socket.on("error", () => undefined);
  let answer = "";
  socket.on("data", (chunk: Buffer) => (answer += chunk.toString("latin1")));
  const closed = new Promise<string>((resolve) => socket.once("close", () => resolve(answer)));
  socket.write(`${method} ${path} HTTP/1.1\r\nhost: x\r\ncontent-type: ${contentType}\r\ncontent-length: 4000\r\n\r\n`);
  socket.write(Buffer.concat([first, Buffer.alloc(HELD - first.length, 0x20)]));
  return { socket, closed };
}

/** Whether `promise` settles within `ms`. */
async function settles(promise: Promise<unknown>, ms: number): Promise<boolean> {
  return Promise.race([promise.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const restReserve = (port: number, size: number) => rawRequest(port, "POST", "/reserve", { "content-type": "application/json" }, paddedJson(size));

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
  it("refuses a body larger than the whole budget on every path, each in its own protocol (REST 429, gRPC-web and gRPC status 8, Connect resource_exhausted)", async () => {
    const { port } = env.svc;
    const TOO_BIG = 17_000; // over the 16 KiB budget, under the 64 KiB message limit
    const rest = await restReserve(port, TOO_BIG);
    expect(rest.status).toBe(429);
    expect(JSON.parse(rest.body.toString())).toMatchObject({ code: "resource_exhausted" });
    // The rest of its body was not read: the connection is not kept.
    expect(rest.headers.connection).toBe("close");

    const web = await rawRequest(port, "POST", RESERVE, { "content-type": "application/grpc-web+proto" }, paddedFrame(TOO_BIG).toString("latin1"));
    expect(web.status).toBe(200);
    expect(web.body.toString("latin1")).toMatch(/grpc-status: 8\r\n/);

    const connectJson = await rawRequest(port, "POST", RESERVE, { "content-type": "application/json" }, paddedJson(TOO_BIG));
    expect(connectJson.status).toBe(429);
    expect(JSON.parse(connectJson.body.toString())).toMatchObject({ code: "resource_exhausted" });

    const connectBinary = await rawRequest(port, "POST", RESERVE, { "content-type": "application/proto" }, paddedFrame(TOO_BIG).subarray(5).toString("latin1"));
    expect(connectBinary.status).toBe(429);

    // HTTP/2: lean gRPC, and a compressed gRPC call (connect-node's gRPC, its status in the trailers).
    expect((await h2Call(port, grpcHeaders, paddedFrame(TOO_BIG))).headers["grpc-status"]).toBe("8");
    const gzipped = await h2Call(port, { ...grpcHeaders, "grpc-encoding": "gzip" }, paddedFrame(TOO_BIG, true));
    expect(gzipped.headers["grpc-status"] ?? gzipped.trailers["grpc-status"]).toBe("8");

    // Nothing stays held: a body of 15,000 bytes fits, on each kind of path.
    expect((await restReserve(port, 15_000)).status).toBe(200);
    expect((await h2Call(port, grpcHeaders, paddedFrame(15_000))).headers["grpc-status"]).toBeUndefined();
    expect((await h2Call(port, { ...grpcHeaders, "grpc-encoding": "gzip" }, paddedFrame(15_000, true))).trailers["grpc-status"]).toBe("0");
  });

  it("cuts the oldest unfinished bodies to make room for new ones, on every path: stalled clients cannot keep others out", async () => {
    const { port } = env.svc;
    // Five bodies left unfinished, one on each path that reads bodies, oldest first: 15,000 of the 16,384 bytes.
    const holders = [];
    // A Connect stream's first envelope, announcing the rest of the body: connect-node waits for it.
    const envelope = Buffer.from([0, 0, 0, 0x0f, 0x80]);
    for (const [method, path, contentType, first] of [
      ["POST", "/reserve", "application/json"], // the REST gateway
      ["POST", RESERVE, "application/grpc-web+proto"], // the lean gRPC-web path
      ["POST", RESERVE, "application/json"], // Connect unary (the lean Connect path)
      ["POST", RESERVE.replace("Reserve", "WatchStatus"), "application/connect+proto", envelope], // a Connect stream (connect-node)
      ["GET", "/health", "text/plain"], // a body on a method that takes none
    ] as const) {
      holders.push(holdBody(port, method, path, contentType, first));
      await sleep(150);
    }
    try {
      // A 2,000-byte body does not fit beside them: it is served, and the oldest alone is cut.
      expect((await restReserve(port, 2000)).status).toBe(200);
      expect(await settles(holders[0]!.closed, 2000)).toBe(true);
      expect(await settles(Promise.any(holders.slice(1).map((h) => h.closed)), 300)).toBe(false);
      // 15,000 bytes need room all four others hold: every one of them is cut, and it is served.
      expect((await restReserve(port, 15_000)).status).toBe(200);
      expect(await settles(Promise.all(holders.map((h) => h.closed)), 2000)).toBe(true);
    } finally {
      for (const { socket } of holders) socket.destroy();
    }
  });

  it("cuts an unfinished HTTP/2 body by resetting its stream: its connection goes on serving", async () => {
    const { port } = env.svc;
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on("error", () => undefined);
    // An HTTP/2 body held unfinished on the Connect path: 15,000 bytes of a 16,000-byte body.
    const holder = session.request({ ":method": "POST", ":path": RESERVE, "content-type": "application/json", "content-length": "16000" }, { endStream: false });
    holder.on("error", () => undefined);
    holder.on("data", () => undefined);
    const reset = new Promise<void>((resolve) => holder.once("close", () => resolve()));
    holder.write(Buffer.alloc(15_000, 0x20));
    await sleep(200);
    // A 2,000-byte call on the same connection is served, and the holder is cut.
    expect((await connectJson(session, paddedJson(2000)))[":status"]).toBe(200);
    expect(await settles(reset, 2000)).toBe(true);
    expect((await connectJson(session, "{}"))[":status"]).toBe(200);
    session.close();
  });
});

/** The bytes unfinished bodies hold now, and the bodies cut so far, from /metrics. */
async function budgetMetrics(baseUrl: string): Promise<{ held: number; cut: number }> {
  const families = await scrape(baseUrl);
  return { held: sample(families, "ticketqueue_request_body_bytes_held", {}) ?? NaN, cut: sample(families, "ticketqueue_request_bodies_cut_total", {}) ?? NaN };
}

/** An HTTP/1.1 request whose client leaves after sending part of its body. */
function leaveMidBody(port: number, path: string, contentType: string): Promise<void> {
  const socket = holdBody(port, "POST", path, contentType).socket;
  return new Promise((resolve) => setTimeout(() => resolve(void socket.destroy()), 100));
}

/** An HTTP/2 request reset by its client after part of its body. */
function resetMidBody(port: number, headers: http2.OutgoingHttpHeaders): Promise<void> {
  return new Promise((resolve) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on("error", () => undefined);
    const stream = session.request({ ":method": "POST", ...headers }, { endStream: false });
    stream.on("error", () => undefined);
    stream.write(Buffer.alloc(HELD, 1));
    setTimeout(() => {
      stream.close(http2.constants.NGHTTP2_CANCEL);
      session.close();
      resolve();
    }, 100);
  });
}

describe("bytes held by bodies", () => {
  it("all come back, however a body ends: client gone mid-body, stream reset, a second message where one was due, refused, cut", async () => {
    const { port, baseUrl } = env.svc;
    expect((await budgetMetrics(baseUrl)).held).toBe(0);
    const twoFrames = (compressed: boolean) => Buffer.concat([paddedFrame(100, compressed), paddedFrame(100, compressed)]);
    await Promise.all([
      // The client leaves mid-body over HTTP/1.1, on each path that reads bodies.
      leaveMidBody(port, "/reserve", "application/json"),
      leaveMidBody(port, RESERVE, "application/grpc-web+proto"),
      leaveMidBody(port, RESERVE, "application/json"),
      leaveMidBody(port, RESERVE, "application/proto"),
      leaveMidBody(port, "/ticketqueue.v1.TicketQueueService/WatchStatus", "application/connect+json"),
      // HTTP/2 streams reset mid-body.
      resetMidBody(port, grpcHeaders),
      resetMidBody(port, { ...grpcHeaders, "grpc-encoding": "gzip" }),
      resetMidBody(port, { ":path": RESERVE, "content-type": "application/json" }),
      resetMidBody(port, { ":path": "/reserve", "content-type": "application/json" }),
      // Two messages where Connect reads one and stops ("extra input message"), unary and streaming.
      h2Call(port, { ...grpcHeaders, "grpc-encoding": "gzip" }, twoFrames(true)),
      rawRequest(port, "POST", RESERVE, { "content-type": "application/grpc-web+proto", "grpc-encoding": "gzip" }, twoFrames(true).toString("latin1")),
      rawRequest(port, "POST", "/ticketqueue.v1.TicketQueueService/WatchStatus", { "content-type": "application/connect+json" }, Buffer.concat([paddedFrame(100), paddedFrame(100)]).toString("latin1")),
      h2Call(port, { ":path": "/ticketqueue.v1.TicketQueueService/WatchEvent", "content-type": "application/connect+proto", "x-token": TEST_ADMIN_TOKEN }, Buffer.concat([paddedFrame(100), paddedFrame(100)])),
    ]);
    expect(await until(async () => (await budgetMetrics(baseUrl)).held === 0)).toBe(true);
  });

  it("counts the bodies cut", async () => {
    const { port, baseUrl } = env.svc;
    const before = (await budgetMetrics(baseUrl)).cut;
    const holder = holdBody(port, "POST", "/reserve", "application/json");
    await sleep(150);
    expect((await restReserve(port, 15_000)).status).toBe(200);
    await holder.closed;
    expect((await budgetMetrics(baseUrl)).cut).toBe(before + 1);
  });
});

describe("BodyBudget", () => {
  it("cuts the oldest other holders first, never the taker itself, gives back once, and refuses what cannot fit alone", () => {
    const budget = new BodyBudget(100);
    const cut: string[] = [];
    const holder = (name: string) => ({ cut: () => cut.push(name) });
    const [a, b, c] = [holder("a"), holder("b"), holder("c")];
    expect(budget.take(a, 40)).toBe(true);
    expect(budget.take(b, 40)).toBe(true);
    // a takes more: still the oldest, so b is cut for it.
    expect(budget.take(a, 30)).toBe(true);
    expect(cut).toEqual(["b"]);
    expect(budget.heldBytes).toBe(70);
    expect(budget.take(c, 50)).toBe(true);
    expect(cut).toEqual(["b", "a"]);
    expect(budget.heldBytes).toBe(50);
    // More than the whole budget: refused, nobody cut.
    expect(budget.take(b, 101)).toBe(false);
    expect(budget.take(c, 51)).toBe(false);
    expect(cut).toEqual(["b", "a"]);
    budget.give(c);
    budget.give(c);
    budget.give(a);
    expect(budget.heldBytes).toBe(0);
  });
});
