import { request as httpRequest } from "node:http";
import * as http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "../gen/health/v1/health_pb.js";
import { StatusChange, TicketQueueService, WatchStatusRequestSchema } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { eventKeys } from "../src/queue/keys.js";
import { startTestRedis, type TestRedis } from "./helpers/redis-server.js";
import { scrape, sample } from "./helpers/metrics.js";
import { until } from "./helpers/wait.js";
import { startTestService, TEST_ADMIN_TOKEN, type TestService } from "./helpers/service.js";

// Open streams are bounded three ways (per process, per connection, per user),
// each stream lets go of everything when its client leaves, and a client that
// stops reading cannot make the server buffer for it without end.

let redis: TestRedis;
const admin = { headers: { "x-token": TEST_ADMIN_TOKEN } };

beforeAll(async () => {
  redis = await startTestRedis();
});
afterAll(async () => {
  await redis.dispose();
});

/** A WatchStatus request as one uncompressed gRPC (or gRPC-web) frame. */
function watchFrame(request: { eventId: string; userId: string; ticket: string }): Buffer {
  const message = toBinary(WatchStatusRequestSchema, create(WatchStatusRequestSchema, request));
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  return frame;
}

/** WatchStatus streams ended with `code` so far (grpc_server_handled_total). */
async function watchesEnded(baseUrl: string, code: string): Promise<number> {
  return sample(await scrape(baseUrl), "grpc_server_handled_total", { grpc_method: "WatchStatus", grpc_code: code }) ?? 0;
}

/** A gRPC-web WatchStatus over HTTP/1.1, framed by hand: the messages it answered and its trailer frame's text. */
function rawGrpcWeb(port: number, request: { eventId: string; userId: string; ticket: string }, headers: Record<string, string>): Promise<{ messages: number; trailer: string }> {
  const frame = watchFrame(request);
  const path = "/ticketqueue.v1.TicketQueueService/WatchStatus";
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: "127.0.0.1", port, path, method: "POST", headers: { "content-type": "application/grpc-web+proto", ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const body = Buffer.concat(chunks);
        let messages = 0;
        let trailer = "";
        for (let at = 0; at + 5 <= body.length; at += 5 + body.readUInt32BE(at + 1)) {
          if (((body[at] ?? 0) & 0x80) !== 0) trailer = body.subarray(at + 5, at + 5 + body.readUInt32BE(at + 1)).toString();
          else messages++;
        }
        resolve({ messages, trailer });
      });
    });
    req.on("error", reject);
    req.end(frame);
  });
}

/** Follows a stream until it ends; resolves with its first message's arrival, or its error code. */
function follow(stream: AsyncIterable<unknown>): { first: Promise<"message" | Code>; done: Promise<void> } {
  let settle: (v: "message" | Code) => void = () => undefined;
  const first = new Promise<"message" | Code>((resolve) => (settle = resolve));
  const done = (async () => {
    try {
      for await (const _ of stream) settle("message");
    } catch (err: unknown) {
      settle(ConnectError.from(err).code);
    }
  })();
  return { first, done };
}

describe("stream limits", () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startTestService(redis.url, { limits: { maxStreams: 6, maxWatchesPerUser: 2 } });
  });
  afterAll(async () => {
    await svc.close();
  });

  it("MAX_WATCHES_PER_USER: a third WatchStatus with one ticket is refused, and allowed again once one closes", async () => {
    const client = createClient(TicketQueueService, createGrpcTransport({ baseUrl: svc.baseUrl }));
    const { userId, ticket } = await client.reserve({ userId: "tabs" });
    const abort = [new AbortController(), new AbortController()];
    const open = abort.map((a) => follow(client.watchStatus({ userId, ticket }, { signal: a.signal })));
    expect(await Promise.all(open.map((o) => o.first))).toEqual(["message", "message"]);
    // Over every transport the same limit: it is the user's, not the connection's.
    const web = createClient(TicketQueueService, createGrpcWebTransport({ baseUrl: svc.baseUrl, httpVersion: "1.1" }));
    expect(await follow(web.watchStatus({ userId, ticket })).first).toBe(Code.ResourceExhausted);
    expect(await follow(client.watchStatus({ userId, ticket })).first).toBe(Code.ResourceExhausted);
    abort[0]?.abort();
    await open[0]?.done;
    const again = new AbortController();
    expect(await until(async () => (await follow(client.watchStatus({ userId, ticket }, { signal: again.signal })).first) === "message")).toBe(true);
    again.abort();
    abort[1]?.abort();
    expect(await until(() => svc.hub.watcherCount() === 0 && svc.server.openStreams() === 0)).toBe(true);
  });

  it.each([
    ["Connect over HTTP/1.1", () => createConnectTransport({ baseUrl: svc.baseUrl, httpVersion: "1.1" })],
    ["gRPC, JSON", () => createGrpcTransport({ baseUrl: svc.baseUrl, useBinaryFormat: false })],
  ])("over %s (connect-node's path), a watch whose client leaves while it opens gives back its place in MAX_WATCHES_PER_USER and its watcher", async (_name, transport) => {
    const client = createClient(TicketQueueService, transport());
    const { userId, ticket } = await client.reserve({ userId: `early-leaver-${_name}` });
    // The watch's first read of Redis waits until the client has left.
    const { store } = svc;
    const { status } = store;
    let reading: () => void = () => undefined;
    const read = new Promise<void>((resolve) => (reading = resolve));
    let letRead: () => void = () => undefined;
    const left = new Promise<void>((resolve) => (letRead = resolve));
    store.status = async (...args) => {
      reading();
      await left;
      return status.apply(store, args);
    };
    try {
      for (let i = 0; i < 3; i++) {
        const leave = new AbortController();
        const watch = follow(client.watchStatus({ userId, ticket }, { signal: leave.signal }));
        await read;
        leave.abort();
        await watch.done;
        // (time for the server to see the client go)
        await new Promise((r) => setTimeout(r, 200));
      }
    } finally {
      letRead();
      store.status = status;
    }
    expect(await until(() => svc.hub.watcherCount() === 0 && svc.server.openStreams() === 0)).toBe(true);
    const abort = [new AbortController(), new AbortController()];
    const open = abort.map((a) => follow(client.watchStatus({ userId, ticket }, { signal: a.signal })));
    expect(await Promise.all(open.map((o) => o.first))).toEqual(["message", "message"]);
    for (const a of abort) a.abort();
    expect(await until(() => svc.hub.watcherCount() === 0 && svc.server.openStreams() === 0)).toBe(true);
  });

  it("gRPC-web over HTTP/1.1: WatchStatus pushes changes, frees its watcher when the page leaves, and ends at its deadline", async () => {
    const web = createClient(TicketQueueService, createGrpcWebTransport({ baseUrl: svc.baseUrl, httpVersion: "1.1" }));
    const grpc = createClient(TicketQueueService, createGrpcTransport({ baseUrl: svc.baseUrl }));
    await grpc.createEvent({ eventId: "h1", capacity: 1 }, admin);
    const seated = await web.reserve({ eventId: "h1", userId: "h1-seated" });
    const queued = await web.reserve({ eventId: "h1", userId: "h1-queued" });
    // How WatchStatus streams ended, by code: a pushed stream is stopped by its writer with why.
    const ended = (code: string): Promise<number> => watchesEnded(svc.baseUrl, code);
    const [cancelledBefore, expiredBefore] = [await ended("CANCELLED"), await ended("DEADLINE_EXCEEDED")];
    const leave = new AbortController();
    const stream = web.watchStatus({ eventId: "h1", userId: "h1-queued", ticket: queued.ticket }, { signal: leave.signal })[Symbol.asyncIterator]();
    expect((await stream.next()).value).toMatchObject({ position: 1 });
    // The seat frees: the promotion is pushed on the open HTTP/1.1 response.
    await grpc.cancel({ eventId: "h1", userId: "h1-seated", ticket: seated.ticket });
    expect((await stream.next()).value).toMatchObject({ change: StatusChange.PROMOTED, position: 0 });
    // The page leaves: its watcher and stream place are given back.
    leave.abort();
    await stream.next().catch(() => undefined);
    expect(await until(() => svc.hub.watcherCount() === 0 && svc.server.openStreams() === 0)).toBe(true);
    expect(await ended("CANCELLED")).toBe(cancelledBefore + 1);
    // grpc-timeout, sent by hand (a client's own timer would end the call by itself): the server ends the stream with DEADLINE_EXCEEDED.
    const started = Date.now();
    const answer = await rawGrpcWeb(svc.port, { eventId: "h1", userId: "h1-queued", ticket: queued.ticket }, { "grpc-timeout": "500m" });
    expect(Date.now() - started).toBeGreaterThanOrEqual(450);
    expect(answer.messages).toBeGreaterThanOrEqual(1);
    expect(answer.trailer).toMatch(/^grpc-status: 4\r$/m);
    expect(await until(() => svc.hub.watcherCount() === 0 && svc.server.openStreams() === 0)).toBe(true);
    expect(await ended("DEADLINE_EXCEEDED")).toBe(expiredBefore + 1);
  });

  it.each([
    ["Connect, JSON, over HTTP/1.1", "application/connect+json", { "connect-timeout-ms": "500" }],
    ["Connect, binary, over HTTP/1.1", "application/connect+proto", { "connect-timeout-ms": "500" }],
    ["gRPC-web, JSON, over HTTP/1.1", "application/grpc-web+json", { "grpc-timeout": "500m" }],
  ])("over %s (connect-node's path), a WatchStatus whose deadline passes ends with DEADLINE_EXCEEDED, not as a clean end", async (_name, contentType, headers) => {
    const grpc = createClient(TicketQueueService, createGrpcTransport({ baseUrl: svc.baseUrl }));
    const { userId, ticket } = await grpc.reserve({ userId: `deadline-${contentType}` });
    const request = { userId, ticket };
    const message = contentType.endsWith("json") ? Buffer.from(JSON.stringify(request)) : Buffer.from(toBinary(WatchStatusRequestSchema, create(WatchStatusRequestSchema, request)));
    const envelope = Buffer.concat([Buffer.from([0, 0, 0, 0, 0]), message]);
    envelope.writeUInt32BE(message.length, 1);
    const started = Date.now();
    const body = await new Promise<string>((resolve, reject) => {
      const req = httpRequest({ host: "127.0.0.1", port: svc.port, path: "/ticketqueue.v1.TicketQueueService/WatchStatus", method: "POST", headers: { "content-type": contentType, ...headers } }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve(Buffer.concat(chunks).toString("latin1")));
      });
      req.on("error", reject);
      req.end(envelope);
    });
    expect(Date.now() - started).toBeGreaterThanOrEqual(450);
    // The end: Connect's end-stream message with the error, or gRPC-web's trailer frame.
    expect(body).toMatch(contentType.startsWith("application/connect") ? /"code":"deadline_exceeded"/ : /grpc-status: ?4\r/);
    expect(await until(() => svc.hub.watcherCount() === 0 && svc.server.openStreams() === 0)).toBe(true);
  });

  it("gRPC over HTTP/2: WatchStatus pushes changes, frees its watcher when the client cancels, and ends at its deadline (each counted by its code)", async () => {
    const grpc = createClient(TicketQueueService, createGrpcTransport({ baseUrl: svc.baseUrl }));
    await grpc.createEvent({ eventId: "h2grpc", capacity: 1 }, admin);
    const seated = await grpc.reserve({ eventId: "h2grpc", userId: "g-seated" });
    const queued = await grpc.reserve({ eventId: "h2grpc", userId: "g-queued" });
    const ended = (code: string): Promise<number> => watchesEnded(svc.baseUrl, code);
    const [cancelledBefore, expiredBefore] = [await ended("CANCELLED"), await ended("DEADLINE_EXCEEDED")];
    const leave = new AbortController();
    const stream = grpc.watchStatus({ eventId: "h2grpc", userId: "g-queued", ticket: queued.ticket }, { signal: leave.signal })[Symbol.asyncIterator]();
    expect((await stream.next()).value).toMatchObject({ position: 1 });
    await grpc.cancel({ eventId: "h2grpc", userId: "g-seated", ticket: seated.ticket });
    expect((await stream.next()).value).toMatchObject({ change: StatusChange.PROMOTED, position: 0 });
    leave.abort();
    await stream.next().catch(() => undefined);
    expect(await until(() => svc.hub.watcherCount() === 0 && svc.server.openStreams() === 0)).toBe(true);
    expect(await until(async () => (await ended("CANCELLED")) === cancelledBefore + 1)).toBe(true);
    // grpc-timeout by hand: the server ends the stream with DEADLINE_EXCEEDED in its trailers.
    const frame = watchFrame({ eventId: "h2grpc", userId: "g-queued", ticket: queued.ticket });
    const session = http2.connect(svc.baseUrl);
    const started = Date.now();
    const call = session.request({ ":path": "/ticketqueue.v1.TicketQueueService/WatchStatus", ":method": "POST", "content-type": "application/grpc", te: "trailers", "grpc-timeout": "500m" });
    call.end(frame);
    let bytes = 0;
    call.on("data", (chunk: Buffer) => (bytes += chunk.length));
    const trailers = await new Promise<http2.IncomingHttpHeaders>((r) => call.once("trailers", r));
    session.close();
    expect(Date.now() - started).toBeGreaterThanOrEqual(450);
    expect(bytes).toBeGreaterThan(5);
    expect(trailers["grpc-status"]).toBe("4");
    expect(await until(() => svc.hub.watcherCount() === 0 && svc.server.openStreams() === 0)).toBe(true);
    expect(await until(async () => (await ended("DEADLINE_EXCEEDED")) === expiredBefore + 1)).toBe(true);
  });

  it("gRPC over HTTP/2: a WatchStatus refused before its first message is answered trailers-only (a retry policy may retry it)", async () => {
    const frame = watchFrame({ eventId: "default", userId: "nobody", ticket: "not-a-ticket" });
    const session = http2.connect(svc.baseUrl);
    const call = session.request({ ":path": "/ticketqueue.v1.TicketQueueService/WatchStatus", ":method": "POST", "content-type": "application/grpc", te: "trailers" });
    call.end(frame);
    let trailersSeen = false;
    call.on("trailers", () => (trailersSeen = true));
    const headers = await new Promise<http2.IncomingHttpHeaders>((r) => call.once("response", r));
    call.resume();
    await new Promise((r) => call.once("close", r));
    session.close();
    expect(headers["grpc-status"]).toBe(String(Code.Unauthenticated));
    expect(trailersSeen).toBe(false);
    expect(await until(() => svc.server.openStreams() === 0)).toBe(true);
  });

  it("gRPC-web over HTTP/2: a WatchStatus the client resets at once, or after its first message, gives everything back", async () => {
    const web = createClient(TicketQueueService, createGrpcWebTransport({ baseUrl: svc.baseUrl, httpVersion: "2" }));
    const { ticket } = await web.reserve({ userId: "h2-reset" });
    for (let i = 0; i < 5; i++) {
      const leave = new AbortController();
      const first = web.watchStatus({ userId: "h2-reset", ticket }, { signal: leave.signal })[Symbol.asyncIterator]().next();
      if (i % 2 === 1) await first.catch(() => undefined);
      leave.abort();
      await first.catch(() => undefined);
    }
    // Five resets: the user's watch quota (2) would be spent if any watcher stayed.
    expect(await until(() => svc.hub.watcherCount() === 0 && svc.server.openStreams() === 0)).toBe(true);
    const again = new AbortController();
    expect(await follow(web.watchStatus({ userId: "h2-reset", ticket }, { signal: again.signal })).first).toBe("message");
    again.abort();
    expect(await until(() => svc.hub.watcherCount() === 0 && svc.server.openStreams() === 0)).toBe(true);
  });

  it("MAX_STREAMS: past the process's bound streams are refused at once, and each closed one frees its place (gRPC, gRPC-web, Connect)", async () => {
    const transports = [
      createGrpcTransport({ baseUrl: svc.baseUrl }),
      createGrpcWebTransport({ baseUrl: svc.baseUrl, httpVersion: "2" }),
      createConnectTransport({ baseUrl: svc.baseUrl, httpVersion: "2" }),
    ];
    const abort = new AbortController();
    const open = Array.from({ length: 6 }, (_, i) => follow(createClient(Health, transports[i % 3]!).watch({}, { signal: abort.signal })));
    expect(await Promise.all(open.map((o) => o.first))).toEqual(Array(6).fill("message"));
    expect(svc.server.openStreams()).toBe(6);
    for (const transport of transports) expect(await follow(createClient(Health, transport).watch({})).first).toBe(Code.ResourceExhausted);
    // Unary calls are not streams: they still go through.
    expect((await createClient(Health, transports[0]!).check({})).status).toBe(ServingStatus.SERVING);
    abort.abort();
    await Promise.all(open.map((o) => o.done));
    expect(await until(() => svc.server.openStreams() === 0)).toBe(true);
  });
});

describe("Health.Watch", () => {
  it("keeps its timers and abort listeners flat over a 20 s stream, and 100 watchers share one Redis check a second; the 101st is refused", async () => {
    const svc = await startTestService(redis.url);
    const warnings: string[] = [];
    const onWarning = (w: Error): void => void warnings.push(w.name);
    process.on("warning", onWarning);
    try {
      const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;
      const client = createClient(Health, createGrpcTransport({ baseUrl: svc.baseUrl }));
      // One controller per stream: a signal shared by 201 calls would warn in this (client) process too.
      const aborts: AbortController[] = [];
      const signal = (): AbortSignal => {
        const a = new AbortController();
        aborts.push(a);
        return a.signal;
      };
      const one = follow(client.watch({}, { signal: signal() }));
      expect(await one.first).toBe("message");
      await new Promise((r) => setTimeout(r, 2000));
      const timersAt2s = timers();
      const pings = async (): Promise<number> => Number(/^cmdstat_ping:calls=(\d+)/m.exec(await svc.redis.info("commandstats"))?.[1] ?? 0);
      // 99 more: Health.Watch, which needs no credential, may hold 100 places in a process.
      const many = Array.from({ length: 99 }, () => follow(client.watch({}, { signal: signal() })));
      expect(await Promise.all(many.map((m) => m.first))).toEqual(Array(99).fill("message"));
      expect(await follow(client.watch({})).first).toBe(Code.ResourceExhausted);
      const pingsBefore = await pings();
      await new Promise((r) => setTimeout(r, 18_000));
      const pingsIn18s = (await pings()) - pingsBefore - 1;
      expect(timers()).toBeLessThanOrEqual(timersAt2s + 2);
      expect(warnings).not.toContain("MaxListenersExceededWarning");
      expect(pingsIn18s).toBeGreaterThanOrEqual(10);
      expect(pingsIn18s).toBeLessThanOrEqual(25);
      aborts.forEach((a) => a.abort());
      await Promise.all([one.done, ...many.map((m) => m.done)]);
      expect(await until(() => svc.server.openStreams() === 0)).toBe(true);
    } finally {
      process.off("warning", onWarning);
      await svc.close();
    }
  }, 40_000);
});

describe("connections and clients that misbehave", () => {
  let svc: TestService;
  beforeAll(async () => {
    // Each change told at once (WATCH_UPDATE_MS=0): a watcher that does not read is sent enough
    // to pass its 64 KiB in seconds. (By default the service sends a watch at most five updates a
    // second, which keeps such a reader within it for long; the bound is for every other source.)
    svc = await startTestService(redis.url, { watchUpdateMs: 0 });
  });
  afterAll(async () => {
    await svc.close();
  });

  it("1,500 concurrent unary calls on one connection all succeed", async () => {
    const client = createClient(TicketQueueService, createGrpcTransport({ baseUrl: svc.baseUrl }));
    await client.createEvent({ eventId: "burst", capacity: 100_000 }, admin);
    const answers = await Promise.all(Array.from({ length: 1500 }, (_, i) => client.reserve({ eventId: "burst", userId: `b${i}` })));
    expect(answers.every((a) => a.ticket !== "")).toBe(true);
    expect((await client.getEvent({ eventId: "burst" })).event?.counts?.joinedTotal).toBe(1500);
  });

  it("SSE answers carry the call's x-request-id; a HEAD is refused 405 without a call (no watch, no call counted)", async () => {
    const client = createClient(TicketQueueService, createGrpcTransport({ baseUrl: svc.baseUrl }));
    const { ticket } = await client.reserve({ userId: "sse-head" });
    const url = `${svc.baseUrl}/v1/events/default/watch?user_id=sse-head&ticket=${encodeURIComponent(ticket)}`;
    const leave = new AbortController();
    const get = await fetch(url, { headers: { "x-request-id": "sse-rid-1" }, signal: leave.signal });
    expect(get.headers.get("x-request-id")).toBe("sse-rid-1");
    leave.abort();
    expect(await until(() => svc.hub.watcherCount() === 0 && svc.server.openStreams() === 0)).toBe(true);
    // HEAD over HTTP/1.1 and HTTP/2: answering as the GET would (401 for a bad ticket, 404 for
    // no such event) means opening the watch; a 200 for any URL misled monitors. 405, nothing opened.
    const started = async (): Promise<number> => sample(await scrape(svc.baseUrl), "grpc_server_started_total", { grpc_method: "WatchStatus" }) ?? 0;
    const before = await started();
    expect(before).toBeGreaterThanOrEqual(1); // (the GET's call)
    const head = await fetch(url, { method: "HEAD" });
    expect(head.status).toBe(405);
    expect(head.headers.get("allow")).toBe("GET");
    expect(await head.text()).toBe("");
    expect((await fetch(`${svc.baseUrl}/v1/events/nonexistent/watch?user_id=x`, { method: "HEAD" })).status).toBe(405);
    const session = http2.connect(svc.baseUrl);
    const h2 = session.request({ ":method": "HEAD", ":path": url.slice(svc.baseUrl.length) });
    const status = await new Promise<number>((r) => h2.once("response", (h) => r(Number(h[":status"]))));
    await new Promise<void>((r) => h2.once("close", () => r()));
    session.close();
    expect(status).toBe(405);
    expect(await started()).toBe(before);
    // Whatever the request holds: a HEAD is no call, and is not counted as one.
    expect((await fetch(`${url}&unknown_field=1`, { method: "HEAD" })).status).toBe(405);
    expect(await started()).toBe(before);
  });

  it("an SSE client on HTTP/2 that closes its stream ends its watcher", async () => {
    const client = createClient(TicketQueueService, createGrpcTransport({ baseUrl: svc.baseUrl }));
    const { userId, ticket } = await client.reserve({ userId: "sse-h2" });
    const session = http2.connect(svc.baseUrl);
    const stream = session.request({ ":path": `/v1/events/default/watch?user_id=${userId}&ticket=${encodeURIComponent(ticket)}` });
    await new Promise((r) => stream.once("data", r));
    expect(svc.hub.watcherCount()).toBe(1);
    stream.close();
    expect(await until(() => svc.hub.watcherCount() === 0)).toBe(true);
    session.close();
  });

  it("an SSE client that stops reading is dropped once 64 KiB wait unread, and the service goes on", async () => {
    const client = createClient(TicketQueueService, createGrpcTransport({ baseUrl: svc.baseUrl }));
    await client.createEvent({ eventId: "unread", capacity: 1 }, admin);
    await client.reserve({ eventId: "unread", userId: "seated" });
    // 600 users ahead of the reader; each one that leaves moves it up (a message of about 300 bytes).
    const [meta = "", , waiting = ""] = eventKeys(svc.prefix, "unread");
    const pipeline = svc.redis.pipeline();
    for (let i = 0; i < 600; i++) pipeline.zadd(waiting, i + 2, `ahead-${i}`);
    pipeline.hset(meta, "next_seq", 601);
    await pipeline.exec();
    const reader = await client.reserve({ eventId: "unread", userId: "reader" });
    // A tiny window, and a stream never read: everything past 1 KiB stays on the server.
    const session = http2.connect(svc.baseUrl, { settings: { initialWindowSize: 1024 } });
    const stream = session.request({ ":path": `/v1/events/unread/watch?user_id=reader&ticket=${encodeURIComponent(reader.ticket)}` });
    await new Promise((r) => stream.once("response", r));
    stream.pause();
    const closed = new Promise<void>((r) => stream.once("close", () => r()));
    stream.on("error", () => undefined);
    for (let i = 0; i < 600; i++) await svc.store.cancel("unread", `ahead-${i}`, undefined);
    expect(await until(() => svc.hub.watcherCount() === 0, 10_000)).toBe(true);
    // Read again: what was sent arrives, then the stream's end, never the rest.
    stream.resume();
    await closed;
    session.destroy();
    expect((await client.getStatus({ eventId: "unread", userId: "reader" })).position).toBe(1);
  });
  // A read stream (not pushed) waits for its client instead of dropping it: pages of WatchEvent's feed over 64 KiB each go through.
  it.each([
    ["gRPC", () => createGrpcTransport({ baseUrl: svc.baseUrl })],
    ["gRPC-web over HTTP/2", () => createGrpcWebTransport({ baseUrl: svc.baseUrl, httpVersion: "2" })],
    ["gRPC-web over HTTP/1.1", () => createGrpcWebTransport({ baseUrl: svc.baseUrl, httpVersion: "1.1" })],
  ] as const)("the booking system catches up on 3,000 feed entries of 120-byte users from cursor 0 over %s (pages of about 140 KB)", async (name, transport) => {
    const client = createClient(TicketQueueService, transport());
    const eventId = `feed-${name.replace(/[^a-z0-9]/gi, "-")}`;
    await client.createEvent({ eventId, capacity: 1 }, admin);
    const feedKey = eventKeys(svc.prefix, eventId)[6] ?? "";
    const pipeline = svc.redis.pipeline();
    for (let i = 0; i < 3000; i++) pipeline.xadd(feedKey, "*", "k", "P", "u", `${String(i).padStart(4, "0")}-${"x".repeat(115)}`);
    await pipeline.exec();
    const abort = new AbortController();
    const users: string[] = [];
    for await (const update of client.watchEvent({ eventId, cursor: "0" }, { ...admin, signal: abort.signal })) {
      users.push(...update.feed.map((entry) => entry.userId));
      if (users.length >= 3000) break;
    }
    abort.abort();
    expect(users).toHaveLength(3000);
    expect(users[2999]?.startsWith("2999-")).toBe(true);
    expect(await until(() => svc.server.openStreams() === 0)).toBe(true);
  });

  // gRPC-web: the stream ends (its client's read ends); gRPC: RST_STREAM ENHANCE_YOUR_CALM, RESOURCE_EXHAUSTED to gRPC clients.
  it.each([
    ["gRPC-web", "unread-web", { "content-type": "application/grpc-web+proto" }, undefined],
    ["gRPC", "unread-grpc", { "content-type": "application/grpc", te: "trailers" }, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM],
  ] as const)("a %s client that stops reading is dropped once 64 KiB wait unread, and the service goes on", async (_name, eventId, headers, rstCode) => {
    const client = createClient(TicketQueueService, createGrpcTransport({ baseUrl: svc.baseUrl }));
    await client.createEvent({ eventId, capacity: 1 }, admin);
    await client.reserve({ eventId, userId: "seated" });
    // 2,000 users ahead of the reader; each one that leaves moves it up (a message of about 50 bytes each).
    const [meta = "", , waiting = ""] = eventKeys(svc.prefix, eventId);
    const pipeline = svc.redis.pipeline();
    for (let i = 0; i < 2000; i++) pipeline.zadd(waiting, i + 2, `ahead-${i}`);
    pipeline.hset(meta, "next_seq", 2001);
    await pipeline.exec();
    const dropped = (): Promise<number> => watchesEnded(svc.baseUrl, "RESOURCE_EXHAUSTED");
    const droppedBefore = await dropped();
    const reader = await client.reserve({ eventId, userId: "reader" });
    const frame = watchFrame({ eventId, userId: "reader", ticket: reader.ticket });
    // A tiny window, and a stream never read: everything past 1 KiB stays on the server.
    const session = http2.connect(svc.baseUrl, { settings: { initialWindowSize: 1024 } });
    const stream = session.request({ ":path": "/ticketqueue.v1.TicketQueueService/WatchStatus", ":method": "POST", ...headers });
    stream.end(frame);
    await new Promise((r) => stream.once("response", r));
    stream.pause();
    const closed = new Promise<void>((r) => stream.once("close", () => r()));
    stream.on("error", () => undefined);
    // (the headers go with the first message, once the watch is open)
    expect(await until(() => svc.hub.watcherCount() === 1)).toBe(true);
    for (let i = 0; i < 2000; i++) await svc.store.cancel(eventId, `ahead-${i}`, undefined);
    expect(await until(() => svc.hub.watcherCount() === 0, 10_000)).toBe(true);
    // Read again: what was sent arrives, then the stream's end, never the rest; its stream place is given back.
    stream.resume();
    await closed;
    if (rstCode !== undefined) expect(stream.rstCode).toBe(rstCode);
    session.destroy();
    expect(await until(() => svc.server.openStreams() === 0)).toBe(true);
    // Counted as a client that did not read, not as one that left.
    expect(await dropped()).toBe(droppedBefore + 1);
    expect((await client.getStatus({ eventId, userId: "reader" })).position).toBe(1);
  });
});

describe("clients that never read their answers", () => {
  it("answers left unread are bounded per process (REFUSED_STREAM past it) and cut after the request timeout", async () => {
    const svc = await startTestService(redis.url, { limits: { maxOpenStreams: 50, requestTimeoutMs: 1000 } });
    try {
      // A flow-control window of 0: the client accepts headers but not one byte of any answer.
      const session = http2.connect(svc.baseUrl, { settings: { initialWindowSize: 0 } });
      session.on("error", () => undefined);
      const codes = await Promise.all(
        Array.from({ length: 100 }, () => new Promise<number>((resolve) => {
          const stream = session.request({ ":path": "/health" });
          stream.on("error", () => undefined);
          stream.pause();
          stream.once("close", () => resolve(stream.rstCode ?? -1));
        })),
      );
      // The first 50 were answered but never read, then cut; the other 50 refused at once.
      expect(codes.filter((c) => c === http2.constants.NGHTTP2_REFUSED_STREAM).length).toBe(50);
      expect(codes.filter((c) => c === http2.constants.NGHTTP2_CANCEL).length).toBe(50);
      session.destroy();
      expect((await fetch(`${svc.baseUrl}/health`)).status).toBe(200);
    } finally {
      await svc.close();
    }
  });
});
