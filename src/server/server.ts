import type { AddressInfo, Socket } from "node:net";
import type * as http from "node:http";
import type * as http2 from "node:http2";
import { constants as http2Constants } from "node:http2";
import { getHeapStatistics } from "node:v8";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "pino";
import type { Metrics } from "../observability/metrics.js";
import { MAX_REQUEST_BYTES, type RpcSurface } from "../rpc/rpc-surface.js";
import { BodyBudget } from "./body-budget.js";
import { createConnectHandler } from "./connect-handler.js";
import { ConnectionsPerIp } from "./connections-per-ip.js";
import { createCors } from "./cors.js";
import { BodyTooLarge, headAsGet, readBody, sendConnectError, type NodeRequest, type NodeResponse } from "./http-body.js";
import { guardSessions } from "./http2-session-guard.js";
import { createLeanGrpc } from "./lean-grpc.js";
import { createLeanConnect } from "./lean-connect.js";
import { createLeanWeb } from "./lean-web.js";
import { serveMetrics } from "./metrics-endpoint.js";
import { createOnePortServer } from "./one-port.js";
import { createWebApp } from "./web-app.js";

/** How much one process lets its clients hold (README: Configure it). */
export interface ServerLimits {
  /** Open connections at most; more are refused at once. */
  maxConnections: number;
  /** Open connections from one address at most; 0: no cap. */
  maxConnectionsPerIp: number;
  /** An HTTP/2 connection with no open stream for this long is closed (GOAWAY). */
  idleTimeoutMs: number;
  /** A request (headers and body) must be complete within this; a stalled one is cut off. */
  requestTimeoutMs: number;
  /** After the server's GOAWAY (or the client's), a session's last streams get this long. */
  goawayGraceMs: number;
  /** HTTP/2 streams open at once in this process, unary calls included (REFUSED_STREAM past it). */
  maxOpenStreams: number;
  /** Every HTTP/2 session is pinged this often, and destroyed when it does not answer within pingTimeoutMs. */
  keepaliveMs: number;
  pingTimeoutMs: number;
  /**
   * HTTP/2 streams one connection may have open (SETTINGS_MAX_CONCURRENT_STREAMS);
   * clients queue the rest. Not much lower: node:http2 counts a stream until its
   * close is processed, a client reusing a slot a moment earlier is refused
   * (ENHANCE_YOUR_CALM), and after 100 refusals node ends the whole connection.
   */
  maxStreamsPerConnection: number;
  /** Bytes all unfinished request bodies of the process may hold together (BodyBudget). */
  maxBufferedRequestBytes: number;
}

/**
 * Connections the kernel may hold for the server before it accepts them (the
 * kernel caps it at net.core.somaxconn). Node's default of 511 dropped SYNs of an
 * opening burst (thousands of pages at once), and each dropped client waited 1 s,
 * then 3 s, to try again: 6,000 joins took 10.5 s (npm run bench:burst).
 */
export const LISTEN_BACKLOG = 65_535;

export const DEFAULT_LIMITS: ServerLimits = {
  maxConnections: 50_000,
  maxConnectionsPerIp: 0,
  idleTimeoutMs: 120_000,
  requestTimeoutMs: 30_000,
  goawayGraceMs: 10_000,
  maxOpenStreams: 40_000,
  keepaliveMs: 60_000,
  pingTimeoutMs: 20_000,
  maxStreamsPerConnection: 2048,
  // An eighth of the heap limit (--max-old-space-size).
  maxBufferedRequestBytes: Math.floor(getHeapStatistics().heap_size_limit / 8),
};

export interface ServerDeps {
  /** The RPCs, their interceptors and routes. */
  rpc: RpcSurface;
  /** Serves what no RPC path matches (the REST gateway). */
  fallback: (req: NodeRequest, res: NodeResponse) => void;
  /** Ends long-lived streams (watchers reconnect elsewhere); called first when the server closes. */
  endStreams: () => Promise<void>;
  /** Shared with `fallback`, which reads bodies too; default: one of `limits.maxBufferedRequestBytes`. */
  bodyBudget?: BodyBudget;
  /** Defaults: DEFAULT_LIMITS. */
  limits?: Partial<ServerLimits>;
  /** Prometheus metrics, served at /metrics; absent: none. */
  metrics?: Metrics;
  /** METRICS_TOKEN: /metrics then wants `Authorization: Bearer <token>`; absent: open. */
  metricsToken?: string;
  /** Browser origins allowed by CORS ("*" for any); empty: same-origin only. */
  corsOrigins?: readonly string[];
  /** The built browser app served at / and /admin; default: dist/web. */
  webDir?: string;
  log: Logger;
}

export interface TicketQueueServer {
  /** Starts listening; resolves with the bound address (port 0 picks a free one). */
  listen(port: number, host?: string): Promise<AddressInfo>;
  /** Serves a connection accepted elsewhere (a cluster worker's, handed over by the primary). */
  accept(socket: Socket): void;
  /** Streaming calls open now. */
  openStreams(): number;
  /** Stops accepting, lets in-flight calls finish for up to `graceMs`, then cuts the rest. */
  close(graceMs?: number): Promise<void>;
}

/**
 * The transports on one port, without starting them: gRPC, gRPC-web and
 * Connect (connect-node, with the lean gRPC, gRPC-web and Connect unary paths in front), the browser app,
 * /metrics, and `fallback` (the REST gateway) for every other path. It adapts
 * HTTP to the RPC surface and knows nothing of what the RPCs do.
 */
export function createTicketQueueServer(deps: ServerDeps): TicketQueueServer {
  const limits: ServerLimits = { ...DEFAULT_LIMITS, ...deps.limits };
  const { rpc } = deps;
  const bodyBudget = deps.bodyBudget ?? new BodyBudget(limits.maxBufferedRequestBytes);
  const lean = { services: rpc.entries, interceptors: rpc.interceptors, maxRequestBytes: MAX_REQUEST_BYTES, bodyBudget, refused: rpc.refused };
  const leanGrpc = createLeanGrpc(lean);
  const leanWeb = createLeanWeb(lean);
  const leanConnect = createLeanConnect(lean);
  const cors = createCors(deps.corsOrigins ?? []);
  const web = createWebApp(deps.webDir);
  if (!web.built) deps.log.warn({ dir: web.dir }, "the web app is not built (npm run build): / and /admin answer 404");
  const connect = createConnectHandler({ routes: rpc.routes, interceptors: rpc.interceptors, maxRequestBytes: MAX_REQUEST_BYTES, bodyBudget, fallback: deps.fallback, refused: rpc.refused });
  let closing = false;
  const dispatch = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse): void => {
    // While draining, HTTP/1.1 connections close after their current response.
    if (closing && req.httpVersionMajor === 1) res.setHeader("connection", "close");
    if (cors(req, res)) return;
    if (req.method === "HEAD") headAsGet(req);
    if (deps.metrics && req.url === "/metrics" && req.method === "GET") return void serveMetrics(deps.metrics, deps.metricsToken, req, res);
    if (web.handle(req, res)) return;
    if (leanWeb(req, res) || leanConnect(req, res)) return;
    connect(req, res);
  };
  const { http1, http2: h2 } = createOnePortServer(
    (req, res) => {
      // A body on a method that takes none (GET, HEAD, OPTIONS, DELETE) is read and
      // dropped first: an answer sent before the body is consumed makes Node close
      // the kept-alive HTTP/1.1 connection under the client's next request.
      if (req.httpVersionMajor === 1 && !BODY_METHODS.has(req.method ?? "") && hasBody(req)) {
        void readBody(req, MAX_REQUEST_BYTES, bodyBudget).then(
          () => dispatch(req, res),
          (err: unknown) => sendConnectError(res, err instanceof BodyTooLarge ? new ConnectError(err.message, Code.ResourceExhausted) : ConnectError.from(err), { status: err instanceof BodyTooLarge ? 413 : undefined, headers: { connection: "close" } }),
        );
        return;
      }
      dispatch(req, res);
    },
    // Every stream is counted first (or refused when the process holds too many), then the lean gRPC path may take it.
    { firstByteTimeoutMs: 10_000, takeStream: (stream, headers) => !sessionGuard.admit(stream) || leanGrpc(stream, headers), requestTimeoutMs: limits.requestTimeoutMs, maxStreamsPerConnection: limits.maxStreamsPerConnection },
  );
  http1.headersTimeout = Math.min(10_000, limits.requestTimeoutMs);
  http1.requestTimeout = limits.requestTimeoutMs;
  http1.keepAliveTimeout = 5_000;
  http1.maxConnections = limits.maxConnections;
  const sessionGuard = guardSessions(h2, { ...limits, maxOpenStreams: limits.maxOpenStreams });

  const perIp = new ConnectionsPerIp(limits.maxConnectionsPerIp);
  const sockets = new Set<Socket>();
  // One function for every socket (`this` is the socket), not a closure and a `once` wrapper each: an open watch holds its connection.
  const forget = function (this: Socket): void {
    sockets.delete(this);
  };
  http1.prependListener("connection", (socket: Socket) => {
    if (!perIp.admit(socket)) return;
    sockets.add(socket);
    socket.on("close", forget);
  });
  let timingHandedOver = false;
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });

  return {
    listen(port, host) {
      return new Promise((resolve, reject) => {
        http1.once("error", reject);
        http1.listen({ port, host, backlog: LISTEN_BACKLOG }, () => {
          http1.off("error", reject);
          resolve(http1.address() as AddressInfo);
        });
      });
    },

    openStreams: rpc.openStreams,

    accept(socket) {
      // node times HTTP/1.1 headers and requests (headersTimeout, requestTimeout) from a
      // check it starts on 'listening': a worker's server never listens, so without this
      // a client that never finishes its headers or body held its connection for good.
      if (!timingHandedOver) {
        timingHandedOver = true;
        http1.emit("listening");
      }
      // What net.Server does for the connections it accepts itself (small gRPC frames must not wait for Nagle).
      socket.setNoDelay(true);
      http1.emit("connection", socket);
    },

    // 7 s by default: with the PING round and the rest of a stop, a supervisor's SIGTERM is done within 10 s.
    async close(graceMs = 7_000) {
      closing = true;
      // Open watch streams end with Unavailable so their clients reconnect elsewhere.
      await deps.endStreams();
      const stopped = new Promise<void>((resolve) => http1.close(() => resolve()));
      // Two-step GOAWAY (as grpc-go does): first a notice that admits any stream
      // already on its way, then, a round trip later, the final one. A single
      // GOAWAY would refuse (REFUSED_STREAM) the streams that crossed it.
      for (const session of sessions) if (!session.closed && !session.destroyed) session.goaway(http2Constants.NGHTTP2_NO_ERROR, 2 ** 31 - 1);
      await Promise.all([...sessions].map((session) => pingOrWait(session, 1000)));
      for (const session of sessions) sessionGuard.retire(session);
      const deadline = Date.now() + graceMs;
      while (sockets.size > 0 && Date.now() < deadline) {
        http1.closeIdleConnections();
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      for (const socket of sockets) socket.destroy();
      await stopped;
    },
  };
}

const BODY_METHODS = new Set(["POST", "PUT", "PATCH"]);

function hasBody(req: http.IncomingMessage | http2.Http2ServerRequest): boolean {
  return Number(req.headers["content-length"] ?? 0) > 0 || req.headers["transfer-encoding"] !== undefined;
}


/** One round trip to the peer (an HTTP/2 PING), or `maxMs`, whichever comes first. */
function pingOrWait(session: http2.ServerHttp2Session, maxMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, maxMs);
    const done = (): void => {
      clearTimeout(timer);
      resolve();
    };
    if (session.closed || session.destroyed || !session.ping(done)) done();
  });
}
