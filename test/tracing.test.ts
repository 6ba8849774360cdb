import { spawn } from "node:child_process";
import { createServer, type Server } from "node:http";
import { resolve } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TicketQueueService } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { freePort, startTestRedis, type TestRedis } from "./helpers/redis-server.js";
import { until } from "./helpers/wait.js";

// OpenTelemetry, from outside: the real entry point (built by `npm test`'s
// pretest) with only the standard OTEL_* variables, a local OTLP/HTTP receiver
// decoding what the exporter sends, and a REST call carrying a W3C traceparent.
const MAIN = resolve("dist/src/main.js");

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: { key: string; value: Record<string, unknown> }[];
}

let redis: TestRedis;
let receiver: Server;
let receiverPort: number;
const spans: OtlpSpan[] = [];
const contentTypes = new Set<string>();

beforeAll(async () => {
  redis = await startTestRedis();
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      contentTypes.add(`${req.method} ${req.url} ${req.headers["content-type"] ?? ""}`);
      if (req.url === "/v1/traces" && req.headers["content-type"]?.startsWith("application/json")) {
        const body = JSON.parse(Buffer.concat(chunks).toString()) as { resourceSpans: { scopeSpans: { spans: OtlpSpan[] }[] }[] };
        for (const rs of body.resourceSpans) for (const ss of rs.scopeSpans) spans.push(...ss.spans);
      }
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
  receiverPort = (receiver.address() as { port: number }).port;
});
afterAll(async () => {
  receiver.close();
  await redis.dispose();
});

async function runService(env: Record<string, string>): Promise<{ port: number; stdout: () => string; stop: () => Promise<void> }> {
  const port = await freePort();
  const child = spawn(process.execPath, [MAIN], {
    env: { PATH: process.env["PATH"] ?? "", HOST: "127.0.0.1", PORT: String(port), REDIS_URL: redis.url, WORKERS: "1", ADMIN_TOKEN: "t", ...env },
  });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise((r) => child.once("exit", r));
  expect(await until(async () => (await fetch(`http://127.0.0.1:${port}/health`).catch(() => undefined))?.ok === true, 15_000)).toBe(true);
  return {
    port,
    stdout: () => out,
    stop: async () => {
      child.kill("SIGTERM");
      await exited;
    },
  };
}

const attribute = (span: OtlpSpan, key: string): unknown => Object.values(span.attributes.find((a) => a.key === key)?.value ?? {})[0];

describe("tracing (OTEL_EXPORTER_OTLP_ENDPOINT set)", () => {
  it("continues a REST call's traceparent in a server span with the RPC conventions, with a Redis child span, and logs the trace id", async () => {
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const otherTraceId = "0af7651916cd43dd8448eb211c80319c";
    const grpcTraceId = "5b8efff798038103d269b633813fc60c";
    let logged = "";
    const service = await runService({ OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${receiverPort}`, OTEL_BSP_SCHEDULE_DELAY: "100", LOG_LEVEL: "debug" });
    try {
      const parent = "00f067aa0ba902b7";
      const res = await fetch(`http://127.0.0.1:${service.port}/reserve`, {
        method: "POST",
        headers: { "content-type": "application/json", traceparent: `00-${traceId}-${parent}-01` },
        body: JSON.stringify({ user_id: "traced" }),
      });
      expect(res.status).toBe(200);
      // A refused call is traced too, with its code.
      await fetch(`http://127.0.0.1:${service.port}/reserve`, { method: "POST", headers: { "content-type": "application/json", traceparent: `00-${traceId}-${parent}-01` }, body: JSON.stringify({ user_id: "" + "x".repeat(1000) }) });
      // Over gRPC (the fast path) too, the caller's trace is continued.
      const grpc = createClient(TicketQueueService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${service.port}` }));
      await grpc.getStatus({ userId: "traced" }, { headers: { traceparent: `00-${grpcTraceId}-${parent}-01` } });
      // With Redis hung, the call's UNAVAILABLE is logged (at debug) with its trace.
      redis.pause();
      try {
        const hung = await fetch(`http://127.0.0.1:${service.port}/status/traced`, { headers: { traceparent: `00-${otherTraceId}-${parent}-01` } });
        expect(hung.status).toBe(503);
      } finally {
        redis.resume();
      }
      expect(await until(() => spans.filter((s) => s.traceId === traceId).length >= 3 && spans.some((s) => s.traceId === grpcTraceId), 10_000), [...contentTypes].join(", ")).toBe(true);
    } finally {
      await service.stop();
      logged = service.stdout();
    }
    // The refused call's log line carries the trace it belongs to.
    expect(logged.split("\n").some((line) => line.includes("rpc unavailable") && line.includes(`"trace_id":"${otherTraceId}"`)), logged.slice(-2000)).toBe(true);
    const traced = spans.filter((s) => s.traceId === traceId);
    const servers = traced.filter((s) => s.kind === 2); // SPAN_KIND_SERVER
    expect(servers).toHaveLength(2);
    for (const server of servers) {
      expect(server.parentSpanId).toBe("00f067aa0ba902b7");
      expect(server.name).toBe("ticketqueue.v1.TicketQueueService/Reserve");
      expect(attribute(server, "rpc.service")).toBe("ticketqueue.v1.TicketQueueService");
      expect(attribute(server, "rpc.method")).toBe("Reserve");
      expect(attribute(server, "rpc.system")).toBe("connect_rpc");
    }
    expect(servers.map((s) => Number(attribute(s, "rpc.grpc.status_code"))).sort()).toEqual([0, 3]);
    // The accepted Reserve ran one script: its span is the server span's child.
    const ok = servers.find((s) => Number(attribute(s, "rpc.grpc.status_code")) === 0);
    const redisSpans = traced.filter((s) => s.parentSpanId === ok?.spanId && s.kind === 3); // SPAN_KIND_CLIENT
    expect(redisSpans.map((s) => s.name)).toEqual(["EVALSHA reserve"]);
    expect(attribute(redisSpans[0] as OtlpSpan, "db.system")).toBe("redis");
    const overGrpc = spans.filter((s) => s.traceId === grpcTraceId && s.kind === 2);
    expect(overGrpc.map((s) => [s.name, s.parentSpanId, attribute(s, "rpc.system")])).toEqual([["ticketqueue.v1.TicketQueueService/GetStatus", "00f067aa0ba902b7", "grpc"]]);
    expect(spans.filter((s) => s.traceId === grpcTraceId && s.parentSpanId === overGrpc[0]?.spanId).map((s) => s.name)).toEqual(["EVALSHA status"]);
  }, 40_000);
});
