import * as http2 from "node:http2";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { describe, expect, it } from "vitest";
import { TicketQueueService } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { sample, scrape } from "./helpers/metrics.js";
import { startTestService, useTestService } from "./helpers/service.js";
import { until } from "./helpers/wait.js";

const env = useTestService({ capacity: 2 });

describe("/metrics (read by a Prometheus text-format parser)", () => {
  it("counts RPCs by code, times them, and reports each event's users and Redis's ping", async () => {
    const client = createClient(TicketQueueService, createGrpcTransport({ baseUrl: env.svc.baseUrl }));
    for (const userId of ["a", "b", "c"]) await client.reserve({ userId });
    await client.reserve({ userId: "bad\n" }).catch(() => undefined);
    await fetch(`${env.svc.baseUrl}/status/a`);
    // A watch refused as it opens (a bad ticket) counts with that code, not as OK.
    await (async () => {
      for await (const m of client.watchStatus({ userId: "a", ticket: "not-a-ticket" })) if (m) break;
    })().catch(() => undefined);

    const families = await scrape(env.svc.baseUrl);
    expect(sample(families, "ticketqueue_rpc_requests_total", { rpc: "Reserve", code: "OK" })).toBe(3);
    expect(sample(families, "ticketqueue_rpc_requests_total", { rpc: "Reserve", code: "INVALID_ARGUMENT" })).toBe(1);
    expect(sample(families, "ticketqueue_rpc_requests_total", { rpc: "GetStatus", code: "OK" })).toBe(1);
    expect(sample(families, "ticketqueue_rpc_requests_total", { rpc: "WatchStatus", code: "UNAUTHENTICATED" })).toBe(1);
    expect(sample(families, "ticketqueue_rpc_requests_total", { rpc: "WatchStatus", code: "OK" })).toBeUndefined();
    // The go-grpc-prometheus names, which stock dashboards read.
    const grpc = { grpc_type: "unary", grpc_service: "ticketqueue.v1.TicketQueueService", grpc_method: "Reserve" };
    expect(sample(families, "grpc_server_started_total", grpc)).toBe(4);
    expect(sample(families, "grpc_server_handled_total", { ...grpc, grpc_code: "OK" })).toBe(3);
    expect(sample(families, "grpc_server_handled_total", { ...grpc, grpc_code: "INVALID_ARGUMENT" })).toBe(1);
    expect(families.find((f) => f.name === "grpc_server_handling_seconds")?.type).toBe("HISTOGRAM");
    expect(families.find((f) => f.name === "ticketqueue_rpc_duration_seconds")?.type).toBe("HISTOGRAM");
    // (The parser keeps a histogram's buckets but not its labels: the count is read from the text.)
    const text = await (await fetch(`${env.svc.baseUrl}/metrics`)).text();
    expect(text).toMatch(/^ticketqueue_rpc_duration_seconds_count\{rpc="Reserve"\} 4$/m);
    expect(sample(families, "ticketqueue_event_users", { event: "default", kind: "capacity" })).toBe(2);
    expect(sample(families, "ticketqueue_event_users", { event: "default", kind: "reserved" })).toBe(2);
    expect(sample(families, "ticketqueue_event_users", { event: "default", kind: "waiting" })).toBe(1);
    expect(sample(families, "ticketqueue_event_users", { event: "default", kind: "joined_total" })).toBe(3);
    expect(sample(families, "ticketqueue_redis_ping_seconds", {})).toBeGreaterThanOrEqual(0);
    expect(sample(families, "ticketqueue_process_resident_memory_bytes", {})).toBeGreaterThan(0);
  });
});

describe("grpc_server_handled_total for streams", () => {
  it("counts a stream when it ends, with the code it ended with", async () => {
    const client = createClient(TicketQueueService, createGrpcTransport({ baseUrl: env.svc.baseUrl }));
    const handledWatches = async (code: string): Promise<number> =>
      sample(await scrape(env.svc.baseUrl), "grpc_server_handled_total", { grpc_type: "server_stream", grpc_service: "ticketqueue.v1.TicketQueueService", grpc_method: "WatchStatus", grpc_code: code }) ?? 0;
    const okBefore = await handledWatches("OK");
    const cancelledBefore = await handledWatches("CANCELLED");
    // One ends by itself (its user leaves the line), one is dropped by its client.
    const leaving = await client.reserve({ userId: "stream-leaves" });
    const dropped = await client.reserve({ userId: "stream-dropped" });
    const abort = new AbortController();
    const ends = (async () => {
      for await (const m of client.watchStatus({ userId: "stream-leaves", ticket: leaving.ticket })) if (m.change === 1) await client.cancel({ userId: "stream-leaves", ticket: leaving.ticket });
    })();
    const cut = (async () => {
      for await (const m of client.watchStatus({ userId: "stream-dropped", ticket: dropped.ticket }, { signal: abort.signal })) if (m.change === 1) abort.abort();
    })().catch(() => undefined);
    await Promise.all([ends, cut]);
    expect(await until(async () => (await handledWatches("OK")) === okBefore + 1 && (await handledWatches("CANCELLED")) === cancelledBefore + 1)).toBe(true);
  });
});

describe("calls refused before any interceptor", () => {
  it("are counted with their code on every transport (a flood of malformed calls shows)", async () => {
    const base = env.svc.baseUrl;
    const reserve = `${base}/ticketqueue.v1.TicketQueueService/Reserve`;
    const counted = async (rpc: string, code: string): Promise<number> => sample(await scrape(base), "ticketqueue_rpc_requests_total", { rpc, code }) ?? 0;
    const handled = async (method: string, code: string): Promise<number> =>
      sample(await scrape(base), "grpc_server_handled_total", { grpc_type: "unary", grpc_service: "ticketqueue.v1.TicketQueueService", grpc_method: method, grpc_code: code }) ?? 0;
    const invalidBefore = await counted("Reserve", "INVALID_ARGUMENT");
    const handledBefore = await handled("Reserve", "INVALID_ARGUMENT");
    const unimplementedBefore = await counted("Reserve", "UNIMPLEMENTED");
    const getBefore = await counted("GetStatus", "INVALID_ARGUMENT");
    // A length-prefixed frame whose message is no ReserveRequest.
    const badFrame = Buffer.from([0, 0, 0, 0, 2, 0xff, 0xff]);

    // gRPC over HTTP/2 (the lean path), uncompressed and with a compression the server does not take (connect-node's own answer).
    const session = http2.connect(base);
    const grpcCall = (headers: http2.OutgoingHttpHeaders, body: Buffer): Promise<string | undefined> =>
      new Promise((resolve, reject) => {
        const stream = session.request({ ":method": "POST", ":path": "/ticketqueue.v1.TicketQueueService/Reserve", "content-type": "application/grpc", te: "trailers", ...headers });
        let status: string | undefined;
        stream.on("response", (h) => (status ??= h["grpc-status"] as string | undefined));
        stream.on("trailers", (t) => (status ??= t["grpc-status"] as string | undefined));
        stream.on("error", reject);
        stream.on("close", () => resolve(status));
        stream.resume();
        stream.end(body);
      });
    try {
      expect(await grpcCall({}, badFrame)).toBe("3");
      expect(await grpcCall({ "grpc-encoding": "zstd" }, Buffer.from([1, 0, 0, 0, 1, 0]))).toBe("12");
    } finally {
      session.close();
    }
    // gRPC-web (lean), Connect JSON (lean), Connect with an unknown encoding (connect-node), a Connect GET that does not decode, REST.
    const web = await fetch(reserve, { method: "POST", headers: { "content-type": "application/grpc-web+proto" }, body: badFrame });
    expect(web.status).toBe(200);
    expect(await web.text()).toMatch(/grpc-status: ?3/);
    // gRPC-web with a compression the server does not take: connect-node's answer, its status in the trailer frame.
    const webZstd = await fetch(reserve, { method: "POST", headers: { "content-type": "application/grpc-web+proto", "grpc-encoding": "zstd" }, body: Buffer.from([1, 0, 0, 0, 1, 0]) });
    expect(await webZstd.text()).toMatch(/grpc-status: ?12/);
    expect((await fetch(reserve, { method: "POST", headers: { "content-type": "application/json" }, body: "{" })).status).toBe(400);
    expect((await fetch(reserve, { method: "POST", headers: { "content-type": "application/json", "content-encoding": "zstd" }, body: "{}" })).status).toBe(501);
    expect((await fetch(`${base}/ticketqueue.v1.TicketQueueService/GetStatus?encoding=json&message=%7B`)).status).toBe(400);
    expect((await fetch(`${base}/reserve`, { method: "POST", headers: { "content-type": "application/json" }, body: "{" })).status).toBe(400);
    // A path variable that is not percent-encoding: its route found, the call refused as that RPC's.
    expect((await fetch(`${base}/status/%ZZ`)).status).toBe(400);

    expect(await counted("Reserve", "INVALID_ARGUMENT")).toBe(invalidBefore + 4);
    expect(await handled("Reserve", "INVALID_ARGUMENT")).toBe(handledBefore + 4);
    expect(await counted("Reserve", "UNIMPLEMENTED")).toBe(unimplementedBefore + 3);
    expect(await counted("GetStatus", "INVALID_ARGUMENT")).toBe(getBefore + 2);
  });
});

describe("/metrics under load and behind a token", () => {
  it("reads each event's users from Redis at most once a second, whatever the scrape rate", async () => {
    // Counted at the store (every Redis reading of a scrape goes through it), so other users of the same Redis do not count.
    let readings = 0;
    const { getEvent, ping } = env.svc.store;
    env.svc.store.getEvent = (...args) => (readings++, getEvent.apply(env.svc.store, args));
    env.svc.store.ping = () => (readings++, ping.apply(env.svc.store));
    try {
      await new Promise((r) => setTimeout(r, 1100));
      const started = performance.now();
      for (let i = 0; i < 10; i++) await Promise.all(Array.from({ length: 20 }, () => fetch(`${env.svc.baseUrl}/metrics`).then((r) => r.text())));
      const seconds = (performance.now() - started) / 1000;
      // 200 scrapes: at most one reading a second (one event here, and a PING).
      expect(readings).toBeLessThanOrEqual((Math.ceil(seconds) + 1) * 2);
      expect(readings).toBeGreaterThanOrEqual(2);
    } finally {
      env.svc.store.getEvent = getEvent;
      env.svc.store.ping = ping;
    }
  });

  it("with METRICS_TOKEN wants it as a bearer token", async () => {
    const guarded = await startTestService(env.redis.url, { metricsToken: "scrape-me" });
    try {
      expect((await fetch(`${guarded.baseUrl}/metrics`)).status).toBe(401);
      expect((await fetch(`${guarded.baseUrl}/metrics`, { headers: { authorization: "Bearer wrong" } })).status).toBe(401);
      const ok = await fetch(`${guarded.baseUrl}/metrics`, { headers: { authorization: "Bearer scrape-me" } });
      expect(ok.status).toBe(200);
      expect(await ok.text()).toContain("ticketqueue_rpc_requests_total");
    } finally {
      await guarded.close();
    }
  });
});
