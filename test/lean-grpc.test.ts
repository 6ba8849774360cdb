import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HealthRequestSchema, TicketQueueService } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { grpcFrame } from "../bench/scenarios.js";
import { createLeanGrpc } from "../src/server/lean-grpc.js";
import { createOnePortServer } from "../src/server/one-port.js";
import { BodyBudget } from "../src/server/body-budget.js";

// The fast path's contract with a handler, seen from the handler's side: a
// handler that waits on its signal, reads its deadline and sets metadata. The
// queue's own handlers need none of this today; a future one may.

interface Seen {
  reason?: unknown;
  timeoutMs?: number | undefined;
}
const seen: Seen = {};
let release: (() => void) | undefined;

const impl = {
  // Waits until its signal aborts (or the test releases it), then answers.
  async health(_req: unknown, ctx: HandlerContext) {
    seen.timeoutMs = ctx.timeoutMs();
    ctx.responseHeader.set("x-handler-header", "h");
    ctx.responseTrailer.set("x-handler-trailer", "t");
    await new Promise<void>((resolve) => {
      release = resolve;
      ctx.signal.addEventListener("abort", () => {
        seen.reason = ctx.signal.reason;
        resolve();
      });
    });
    return { status: "ok" };
  },
};

let port = 0;
let close: () => Promise<void>;
beforeAll(async () => {
  const lean = createLeanGrpc({ services: [{ service: TicketQueueService, impl }], interceptors: [], maxRequestBytes: 1024, bodyBudget: new BodyBudget(4096) });
  const { http1 } = createOnePortServer(
    (_req, res) => {
      res.writeHead(404);
      res.end("not taken by the fast path");
    },
    { firstByteTimeoutMs: 5000, requestTimeoutMs: 30_000, maxStreamsPerConnection: 1000, takeStream: lean },
  );
  await new Promise<void>((resolve) => http1.listen(0, "127.0.0.1", resolve));
  port = (http1.address() as AddressInfo).port;
  close = () => new Promise((resolve) => http1.close(() => resolve()));
});
afterAll(async () => close());

interface Answer {
  headers: http2.IncomingHttpHeaders;
  trailers?: http2.IncomingHttpHeaders;
}

function call(headers: Record<string, string>, body: Buffer, options: { cancelAfterMs?: number } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    const stream = session.request({
      ":method": "POST",
      ":path": "/ticketqueue.v1.TicketQueueService/Health",
      "content-type": "application/grpc",
      te: "trailers",
      ...headers,
    });
    let answer: Answer = { headers: {} };
    stream.on("response", (h) => (answer = { ...answer, headers: h }));
    stream.on("trailers", (t) => (answer = { ...answer, trailers: t }));
    stream.on("data", () => undefined);
    stream.on("close", () => {
      session.close();
      resolve(answer);
    });
    stream.on("error", reject);
    stream.end(body);
    if (options.cancelAfterMs !== undefined) setTimeout(() => stream.close(http2.constants.NGHTTP2_CANCEL), options.cancelAfterMs);
  });
}

const HEALTH = grpcFrame(HealthRequestSchema, {});

describe("the unary gRPC fast path, from a handler's side", () => {
  it("passes the deadline to the handler, answers DEADLINE_EXCEEDED at it, and aborts the handler's signal", async () => {
    const started = performance.now();
    const a = await call({ "grpc-timeout": "150m" }, HEALTH);
    expect(a.headers["grpc-status"]).toBe(String(Code.DeadlineExceeded));
    expect(performance.now() - started).toBeLessThan(1000);
    // What is left of the 150 ms when the handler runs (less on a busy machine; never more).
    expect(seen.timeoutMs).toBeGreaterThan(0);
    expect(seen.timeoutMs).toBeLessThanOrEqual(150);
    expect(ConnectError.from(seen.reason).code).toBe(Code.DeadlineExceeded);
  });

  it("aborts the handler's signal with CANCELED when the client cancels the stream", async () => {
    seen.reason = undefined;
    await call({}, HEALTH, { cancelAfterMs: 100 });
    await expect.poll(() => seen.reason).toBeDefined();
    expect(ConnectError.from(seen.reason).code).toBe(Code.Canceled);
  });

  it("sends the handler's response headers and trailers, with grpc-status 0", async () => {
    setTimeout(() => release?.(), 50);
    const a = await call({}, HEALTH);
    expect(a.headers["x-handler-header"]).toBe("h");
    expect(a.trailers?.["x-handler-trailer"]).toBe("t");
    expect(a.trailers?.["grpc-status"]).toBe("0");
    expect(seen.timeoutMs).toBeUndefined();
  });

  it("takes a deadline too far off for a timer (the largest grpc-timeout, 99999999H) as none", async () => {
    setTimeout(() => release?.(), 50);
    const a = await call({ "grpc-timeout": "99999999H" }, HEALTH);
    expect(a.trailers?.["grpc-status"]).toBe("0");
    expect(seen.timeoutMs).toBeUndefined();
  });

  it("refuses an empty body and a message over the limit without calling the handler", async () => {
    expect((await call({}, Buffer.alloc(0))).headers["grpc-status"]).toBe(String(Code.InvalidArgument));
    const big = Buffer.alloc(5 + 2000);
    big.writeUInt32BE(2000, 1);
    expect((await call({}, big)).headers["grpc-status"]).toBe(String(Code.ResourceExhausted));
  });

  it("leaves what it does not serve to the request handler: browsers, other encodings, unknown methods", async () => {
    expect((await call({ origin: "https://example.test" }, HEALTH)).headers[":status"]).toBe(404);
    expect((await call({ "grpc-encoding": "gzip" }, HEALTH)).headers[":status"]).toBe(404);
    expect((await call({ "content-type": "application/grpc-web" }, HEALTH)).headers[":status"]).toBe(404);
  });
});

describe("unfinished request bodies", () => {
  it("together hold at most the process's budget (4 KiB here): past it a call is RESOURCE_EXHAUSTED, and the budget comes back when calls end", async () => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    const open = Array.from({ length: 5 }, () => {
      const stream = session.request({ ":method": "POST", ":path": "/ticketqueue.v1.TicketQueueService/Health", "content-type": "application/grpc", te: "trailers" }, { endStream: false });
      const status = new Promise<string | undefined>((resolve) => {
        stream.on("response", (h) => resolve(typeof h["grpc-status"] === "string" ? h["grpc-status"] : undefined));
        stream.on("close", () => resolve(undefined));
      });
      stream.on("error", () => undefined);
      stream.on("data", () => undefined);
      // Most of a message, never the rest: a frame announcing 1,000 bytes, 990 sent.
      const partial = Buffer.alloc(995);
      partial.writeUInt32BE(1000, 1);
      stream.write(partial);
      return { stream, status };
    });
    const refused = await Promise.race([Promise.any(open.map((o) => o.status.then((s) => (s === undefined ? Promise.reject(new Error("closed")) : s)))), new Promise<string>((r) => setTimeout(() => r("none refused"), 3000))]);
    expect(refused).toBe(String(Code.ResourceExhausted));
    open.forEach((o) => o.stream.close(http2.constants.NGHTTP2_CANCEL));
    await new Promise((r) => setTimeout(r, 100));
    session.close();
    // Admitted again: this handler waits for its deadline (DEADLINE_EXCEEDED), where a refusal would be RESOURCE_EXHAUSTED.
    expect((await call({ "grpc-timeout": "100m" }, HEALTH)).headers["grpc-status"]).toBe(String(Code.DeadlineExceeded));
  });
});
