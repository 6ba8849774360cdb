import { createServer, request, type Server } from "node:http";
import { connect, type AddressInfo } from "node:net";
import { ConnectError, Code } from "@connectrpc/connect";
import { afterEach, describe, expect, it, vi } from "vitest";
import { sendServerSentEvents } from "../src/gateway/server-sent-events.js";
import { ResponseSignals } from "../src/server/http-body.js";

// The SSE writer on a real node:http server, with streams that end or fail
// before their first message: it answers, ends, and leaves no heartbeat
// timer behind (each would hold its response and socket, writing to them
// every 15 s, for good).
const HEARTBEAT_MS = 15_000;
let server: Server | undefined;
afterEach(async () => {
  vi.restoreAllMocks();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  server = undefined;
});

async function serve(messages: () => AsyncIterable<object>): Promise<{ status: number; type: string; requestId: string; body: string }> {
  server = createServer((_req, res) => {
    sendServerSentEvents(messages(), { toJson: (m) => JSON.stringify(m), jsonOptions: {}, signals: new ResponseSignals(res), header: new Headers({ "x-request-id": "r1" }) }, res, (err) => {
      res.writeHead(err.code === Code.NotFound ? 404 : 500, { "x-request-id": "r1" });
      res.end(err.rawMessage);
    });
  });
  await new Promise<void>((resolve) => server?.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return new Promise((resolve, reject) => {
    const req = request({ port, host: "127.0.0.1", path: "/", agent: false, headers: { connection: "close" } }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, type: String(res.headers["content-type"]), requestId: String(res.headers["x-request-id"]), body }));
    });
    req.on("error", reject);
    req.end();
  });
}

/** The heartbeat intervals the writer made that it did not clear. */
function heartbeatsLeft(set: { mock: { calls: unknown[][]; results: { value: unknown }[] } }, cleared: { mock: { calls: unknown[][] } }): number {
  const made = set.mock.results.filter((_, i) => set.mock.calls[i]?.[1] === HEARTBEAT_MS).map((r) => r.value);
  const gone = new Set(cleared.mock.calls.map((c) => c[0]));
  return made.filter((t) => !gone.has(t)).length;
}

describe("Server-Sent Events writer", () => {
  it("a stream that ends before its first message answers 200 and `end`, and leaves no heartbeat behind", async () => {
    const set = vi.spyOn(globalThis, "setInterval");
    const cleared = vi.spyOn(globalThis, "clearInterval");
    const answer = await serve(async function* () {});
    expect(answer).toMatchObject({ status: 200, requestId: "r1", body: "event: end\ndata: {}\n\n" });
    expect(answer.type).toMatch(/^text\/event-stream/);
    expect(heartbeatsLeft(set, cleared)).toBe(0);
  });

  it("one message then the end: status, end, and no heartbeat left", async () => {
    const set = vi.spyOn(globalThis, "setInterval");
    const cleared = vi.spyOn(globalThis, "clearInterval");
    const answer = await serve(async function* () {
      yield { version: 7, position: 3 };
    });
    expect(answer.body).toBe(`id: 7\nevent: status\ndata: {"version":7,"position":3}\n\nevent: end\ndata: {}\n\n`);
    expect(heartbeatsLeft(set, cleared)).toBe(0);
  });

  it("a failure before the first message is the error answer; after it, an `error` event", async () => {
    const set = vi.spyOn(globalThis, "setInterval");
    const cleared = vi.spyOn(globalThis, "clearInterval");
    expect(
      await serve(async function* () {
        throw new ConnectError("no such event", Code.NotFound);
      }),
    ).toMatchObject({ status: 404, body: "no such event" });
    const late = await serve(async function* () {
      yield { version: 1 };
      throw new ConnectError("gone", Code.Unavailable);
    });
    expect(late.status).toBe(200);
    expect(late.body).toMatch(/^id: 1\nevent: status\ndata: \{"version":1\}\n\nevent: error\ndata: \{"code":"unavailable","message":"gone"/);
    expect(heartbeatsLeft(set, cleared)).toBe(0);
  });
});

describe("ResponseSignals", () => {
  it("made after the client left (its body read, then gone), knows it: the signal is aborted and a stream it follows is stopped at once", async () => {
    const seen = new Promise<{ closed: boolean; aborted: boolean; stopped: unknown }>((resolve) => {
      server = createServer((req, res) => {
        req.resume();
        // Made only once the response has closed, as the gateway makes it after reading the body.
        res.on("close", () =>
          setImmediate(() => {
            const signals = new ResponseSignals(res);
            let stopped: unknown;
            signals.follow({ stop: (reason) => (stopped = reason) });
            resolve({ closed: signals.closed, aborted: signals.signal().aborted, stopped });
          }),
        );
      });
    });
    await new Promise<void>((resolve) => server?.listen(0, "127.0.0.1", resolve));
    const { port } = server?.address() as AddressInfo;
    const socket = connect(port, "127.0.0.1", () => {
      socket.write("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}");
      setTimeout(() => socket.destroy(), 50);
    });
    const { closed, aborted, stopped } = await seen;
    expect(closed).toBe(true);
    expect(aborted).toBe(true);
    expect(ConnectError.from(stopped).code).toBe(Code.Canceled);
  });
});
