import { setMaxListeners } from "node:events";
import { spawn } from "node:child_process";
import { resolve } from "node:path";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health } from "../gen/health/v1/health_pb.js";
import { TicketQueueService } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { MAX_ANONYMOUS_STREAMS } from "../src/rpc/stream-limit.js";
import { freePort, startTestRedis, type TestRedis } from "./helpers/redis-server.js";

// A service with a small heap (--max-old-space-size=384, as in a small container)
// flooded with streams: 12,000 WatchStatus attempts with one ticket, then 8,000
// Health.Watch attempts (no ticket needed), over gRPC-web, the transport whose
// streams cost the most heap. Without the stream bounds it died of heap exhaustion.
// (MAX_STREAMS itself is tested in test/streams.test.ts.)

const MAIN = resolve("dist/src/main.js");
const CONNECTIONS = 30;
let redis: TestRedis;

beforeAll(async () => {
  redis = await startTestRedis();
});
afterAll(async () => {
  await redis.dispose();
});

type Outcome = "open" | "RefusedStream" | Code;

/** Opens a stream and resolves once it is open (first message) or refused; it stays open until the signal. */
function attempt(stream: AsyncIterable<unknown>): Promise<Outcome> {
  return new Promise((settle) => {
    void (async () => {
      try {
        for await (const _ of stream) settle("open");
        settle("open");
      } catch (err: unknown) {
        settle(refusedStream(err) ? "RefusedStream" : ConnectError.from(err).code);
      }
    })();
  });
}

/**
 * The server's REFUSED_STREAM. connect-node reports it as UNAVAILABLE when it reads
 * the reset code, but as INTERNAL when node:http2 raises it as a stream error
 * (while the request is still being written): the wire says the same either way.
 */
function refusedStream(err: unknown): boolean {
  const cause = err instanceof ConnectError ? err.cause : err;
  return cause instanceof Error && "code" in cause && cause.code === "ERR_HTTP2_STREAM_ERROR" && cause.message.includes("NGHTTP2_REFUSED_STREAM");
}

function tally(results: Outcome[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of results) {
    const key = typeof r === "string" ? r : Code[r];
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

describe("a flood of streams against a 384 MB heap", () => {
  it("12,000 WatchStatus attempts with one ticket and 8,000 Health.Watch attempts leave the service up and answering", async () => {
    const port = await freePort();
    // REQUEST_TIMEOUT_SECONDS well above the flood's length: on a loaded machine the
    // client's 12,000 requests take over 30 s to send, and the request timeout (tested
    // in connections.test.ts) would cut the last ones with CANCEL, which is not what this tests.
    const child = spawn(process.execPath, ["--max-old-space-size=384", MAIN], {
      env: { PATH: process.env["PATH"] ?? "", HOST: "127.0.0.1", PORT: String(port), WORKERS: "1", REDIS_URL: redis.url, ADMIN_TOKEN: "flood", LOG_LEVEL: "warn", RATE_LIMIT_PER_MINUTE: "0", REDIS_COMMAND_TIMEOUT_MS: "10000", REQUEST_TIMEOUT_SECONDS: "300" },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)));
    const baseUrl = `http://127.0.0.1:${port}`;
    const abort = new AbortController();
    setMaxListeners(0, abort.signal); // one controller ends many calls: not a leak
    try {
      for (let i = 0; i < 200 && !(await fetch(`${baseUrl}/health`).then((r) => r.ok, () => false)); i++) await new Promise((r) => setTimeout(r, 50));
      // 30 connections: node:http2's client ends a session after 1,000 frames for
      // streams it has closed (maxSessionInvalidFrames), which refused streams leave.
      const transports: Transport[] = Array.from({ length: CONNECTIONS }, () => createGrpcWebTransport({ baseUrl, httpVersion: "2", nodeOptions: { maxSessionMemory: 64 } }));
      const queue = createClient(TicketQueueService, transports[0]!);
      const { userId, ticket } = await queue.reserve({ userId: "one-ticket" });

      const watches = await Promise.all(
        Array.from({ length: 12_000 }, (_, i) => attempt(createClient(TicketQueueService, transports[i % CONNECTIONS]!).watchStatus({ userId, ticket }, { signal: abort.signal }))),
      );
      // Four open (MAX_WATCHES_PER_USER); every other attempt refused at once, by the per-user bound
      // (RESOURCE_EXHAUSTED) or, in a burst past the process's stream bound, as REFUSED_STREAM (UNAVAILABLE, retryable).
      const watchCounts = tally(watches);
      expect(watchCounts["open"], JSON.stringify(watchCounts)).toBe(4);
      // (Under a full suite on 2 cores a handful of the client's own 12,000 calls may end otherwise, never as a server error.)
      const refused = (counts: Record<string, number>): number => (counts["ResourceExhausted"] ?? 0) + (counts["Unavailable"] ?? 0) + (counts["RefusedStream"] ?? 0);
      expect(refused(watchCounts), JSON.stringify(watchCounts)).toBeGreaterThanOrEqual(11_990);
      expect((watchCounts["Internal"] ?? 0) + (watchCounts["Unknown"] ?? 0), JSON.stringify(watchCounts)).toBe(0);

      const health = await Promise.all(Array.from({ length: 8_000 }, (_, i) => attempt(createClient(Health, transports[i % CONNECTIONS]!).watch({}, { signal: abort.signal }))));
      // Health.Watch needs no credential: it may hold MAX_ANONYMOUS_STREAMS places, never the travellers' share.
      const healthCounts = tally(health);
      expect(healthCounts["open"], JSON.stringify(healthCounts)).toBe(MAX_ANONYMOUS_STREAMS);
      expect(refused(healthCounts), JSON.stringify(healthCounts)).toBe(8_000 - MAX_ANONYMOUS_STREAMS);

      // Still up, and answering every kind of call.
      expect(child.exitCode).toBeNull();
      expect((await fetch(`${baseUrl}/health`)).status).toBe(200);
      expect((await queue.reserve({ userId: "after-the-flood" })).ticket).not.toBe("");
      abort.abort();
      const metrics = async (): Promise<string> => (await fetch(`${baseUrl}/metrics`)).text();
      for (let i = 0; i < 100 && !/^ticketqueue_open_streams 0$/m.test(await metrics()); i++) await new Promise((r) => setTimeout(r, 100));
      expect(await metrics()).toMatch(/^ticketqueue_open_streams 0$/m);
      expect(stderr).not.toMatch(/heap|out of memory/i);
    } finally {
      abort.abort();
      child.kill("SIGTERM");
      await exited;
    }
  }, 120_000);
});
