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
