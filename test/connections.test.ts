import { execFile } from "node:child_process";
import { readdirSync } from "node:fs";
import * as http2 from "node:http2";
import { connect, type Socket } from "node:net";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestRedis, type TestRedis } from "./helpers/redis-server.js";
import { until } from "./helpers/wait.js";
import { startTestService } from "./helpers/service.js";

// Every connection ends, whatever its client does: a plain FIN, silence, a body
// that never ends, a GOAWAY with a connection kept open. A single process (what
// WORKERS=1 runs) accepts the sockets itself, as these services do.

const run = promisify(execFile);
let redis: TestRedis;

beforeAll(async () => {
  redis = await startTestRedis();
});
afterAll(async () => {
  await redis.dispose();
});

function openDescriptors(): number {
  return readdirSync("/proc/self/fd").length;
}

function h2Connect(baseUrl: string): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(baseUrl);
    session.once("connect", () => resolve(session));
    session.once("error", reject);
  });
}

function closedWithin(session: http2.ClientHttp2Session, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (session.destroyed) return resolve(true);
    const timer = setTimeout(() => resolve(false), ms);
    session.once("close", () => (clearTimeout(timer), resolve(true)));
  });
}

describe("connections end when their clients do", () => {
  it("200 HTTP/2 requests by curl with MAX_CONNECTIONS=50: HTTP/1.1 and HTTP/2 still answer, descriptors back where they were", async () => {
    const svc = await startTestService(redis.url, { limits: { maxConnections: 50 } });
    try {
      const before = openDescriptors();
      for (let i = 0; i < 200; i += 10) {
        await Promise.all(Array.from({ length: 10 }, () => run("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--http2-prior-knowledge", `${svc.baseUrl}/health`])));
      }
      expect(await until(() => openDescriptors() <= before + 5)).toBe(true);
      const h1 = await run("curl", ["-s", "-m", "5", "-w", " %{http_version}", `${svc.baseUrl}/health`]);
      expect(h1.stdout).toMatch(/"status":"ok".* 1\.1$/);
      const h2 = await run("curl", ["-s", "-m", "5", "-w", " %{http_version}", "--http2-prior-knowledge", `${svc.baseUrl}/health`]);
      expect(h2.stdout).toMatch(/"status":"ok".* 2$/);
    } finally {
      await svc.close();
    }
  });

  it("an HTTP/2 connection with no open stream is closed after the idle timeout; an open stream keeps it", async () => {
    const svc = await startTestService(redis.url, { limits: { idleTimeoutMs: 400 } });
    try {
      const idle = await h2Connect(svc.baseUrl);
      expect(await closedWithin(idle, 3000)).toBe(true);

      const busy = await h2Connect(svc.baseUrl);
      // A Health.Watch stream: long-lived, silent after its first message.
      const stream = busy.request({ ":method": "POST", ":path": "/grpc.health.v1.Health/Watch", "content-type": "application/grpc", te: "trailers" });
      stream.end(Buffer.from([0, 0, 0, 0, 0]));
      stream.on("data", () => undefined);
      expect(await closedWithin(busy, 1500)).toBe(false);
      stream.close();
      expect(await closedWithin(busy, 3000)).toBe(true);
    } finally {
      await svc.close();
    }
  });

  it("a request body that never ends is cut off after the request timeout (HTTP/2 and HTTP/1.1)", async () => {
    const svc = await startTestService(redis.url, { limits: { requestTimeoutMs: 500 } });
    try {
      const session = await h2Connect(svc.baseUrl);
      const stream = session.request({ ":method": "POST", ":path": "/ticketqueue.v1.TicketQueueService/Reserve", "content-type": "application/grpc", te: "trailers" }, { endStream: false });
      stream.write(Buffer.from([0, 0, 0, 0, 10, 1]));
      stream.on("data", () => undefined);
      const reset = await new Promise<number | undefined>((resolve) => {
        const timer = setTimeout(() => resolve(undefined), 3000);
        stream.once("close", () => (clearTimeout(timer), resolve(stream.rstCode)));
      });
      expect(reset).toBe(http2.constants.NGHTTP2_CANCEL);
      session.destroy();

      const closed = await new Promise<boolean>((resolve) => {
        const socket = connect(svc.port, "127.0.0.1", () => socket.write("POST /reserve HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"));
        const timer = setTimeout(() => (socket.destroy(), resolve(false)), 5000);
        socket.on("data", () => undefined);
        socket.once("close", () => (clearTimeout(timer), resolve(true)));
      });
      expect(closed).toBe(true);
    } finally {
      await svc.close();
    }
  });

  it("a client that sends GOAWAY but keeps its stream and socket open is cut off after the grace period", async () => {
    const svc = await startTestService(redis.url, { limits: { goawayGraceMs: 300 } });
    try {
      const session = await h2Connect(svc.baseUrl);
      const stream = session.request({ ":method": "POST", ":path": "/grpc.health.v1.Health/Watch", "content-type": "application/grpc", te: "trailers" });
      stream.end(Buffer.from([0, 0, 0, 0, 0]));
      stream.on("data", () => undefined);
      await new Promise((r) => stream.once("response", r));
      session.goaway(http2.constants.NGHTTP2_NO_ERROR);
      expect(await closedWithin(session, 3000)).toBe(true);
    } finally {
      await svc.close();
    }
  });

  it("MAX_CONNECTIONS_PER_IP refuses a further connection from the same address until one closes", async () => {
    const svc = await startTestService(redis.url, { limits: { maxConnectionsPerIp: 2 } });
    try {
      const open = await Promise.all([0, 1].map(() => new Promise<Socket>((resolve) => {
        const s = connect(svc.port, "127.0.0.1", () => resolve(s));
      })));
      await new Promise((r) => setTimeout(r, 50));
      const third = await fetch(`${svc.baseUrl}/health`).then((r) => r.status, () => 0);
      expect(third).toBe(0);
      open[0]?.destroy();
      expect(await until(async () => (await fetch(`${svc.baseUrl}/health`).then((r) => r.status, () => 0)) === 200)).toBe(true);
      open[1]?.destroy();
    } finally {
      await svc.close();
    }
  });
});

/** HTTP/2 frames written by hand, for what well-behaved clients never send. */
function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(stream, 5);
  return Buffer.concat([header, payload]);
}

/** A HEADERS block of literal fields (HPACK without indexing or Huffman). */
function headerBlock(fields: [string, string][]): Buffer {
  return Buffer.concat(fields.map(([name, value]) => Buffer.concat([Buffer.from([0x10, name.length]), Buffer.from(name), Buffer.from([value.length]), Buffer.from(value)])));
}

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

describe("clients that break the protocol", () => {
  it("a gRPC call whose stream the client resets (RST_STREAM NO_ERROR) after half a body does not take the process down", async () => {
    const svc = await startTestService(redis.url);
    try {
      for (const path of ["/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch", "/ticketqueue.v1.TicketQueueService/Reserve"]) {
        for (const body of [Buffer.from([0, 0, 0, 0, 9, 1]), Buffer.alloc(0)] as Buffer[]) {
          const socket = connect(svc.port, "127.0.0.1");
          socket.on("error", () => undefined);
          socket.resume();
          const headers = headerBlock([[":method", "POST"], [":scheme", "http"], [":path", path], [":authority", "x"], ["content-type", "application/grpc"], ["te", "trailers"]]);
          socket.write(Buffer.concat([PREFACE, frame(4, 0, 0), frame(4, 1, 0), frame(1, 4, 1, headers), ...(body.length > 0 ? [frame(0, 0, 1, body)] : [])]));
          await new Promise((r) => setTimeout(r, 50));
          socket.write(frame(3, 0, 1, Buffer.alloc(4))); // RST_STREAM, NO_ERROR
          await new Promise((r) => setTimeout(r, 50));
          socket.destroy();
        }
      }
      await new Promise((r) => setTimeout(r, 100));
      // Still here: a call over gRPC answers.
      const h2 = await run("curl", ["-s", "-m", "5", "--http2-prior-knowledge", `${svc.baseUrl}/health`]);
      expect(h2.stdout).toContain('"status":"ok"');
    } finally {
      await svc.close();
    }
  });

  it("a session nghttp2 ended by itself (DATA on a closed stream) is found by its unanswered PING and closed: no slot is held for good", async () => {
    const svc = await startTestService(redis.url, { limits: { maxConnections: 10, keepaliveMs: 200, pingTimeoutMs: 300 } });
    try {
      const before = openDescriptors();
      const headers = headerBlock([[":method", "GET"], [":scheme", "http"], [":path", "/health"], [":authority", "x"]]);
      const stuck = Array.from({ length: 10 }, () => {
        const socket = connect(svc.port, "127.0.0.1", () => socket.write(Buffer.concat([PREFACE, frame(4, 0, 0), frame(4, 1, 0), frame(1, 5, 1, headers), frame(0, 1, 1, Buffer.alloc(5))])));
        socket.on("error", () => undefined);
        socket.resume();
        return socket;
      });
      await new Promise((r) => setTimeout(r, 300));
      stuck.forEach((s) => s.end()); // FIN, which the ended session never reads
      expect(await until(() => openDescriptors() <= before + 2, 5000)).toBe(true);
      const h1 = await run("curl", ["-s", "-m", "5", `${svc.baseUrl}/health`]);
      expect(h1.stdout).toContain('"status":"ok"');
    } finally {
      await svc.close();
    }
  });
});
