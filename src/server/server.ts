import type { AddressInfo, Socket } from "node:net";
import type * as http from "node:http";
import type * as http2 from "node:http2";
import { constants as http2Constants } from "node:http2";
import { Code, ConnectError, createConnectRouter, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Logger } from "pino";
import { ServerReflection as ReflectionV1 } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ReflectionV1Alpha } from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { Health } from "../../gen/health/v1/health_pb.js";
import { TicketQueueService } from "../../gen/ticketqueue/v1/ticket_queue_pb.js";
import { createRestGateway } from "../gateway/rest-gateway.js";
import type { QueueStore } from "../queue/queue-store.js";
import type { Tickets } from "../tickets/tickets.js";
import type { ChangeHub } from "../watch/change-hub.js";
import { adminAuthInterceptor, type AdminJwtVerifier } from "./admin-auth.js";
import { auditInterceptor } from "./audit-log.js";
import { errorInterceptor } from "./errors.js";
import { peerContext } from "./caller.js";
import type { Metrics } from "../observability/metrics.js";
import { createConnectBinaryGuard } from "./connect-binary-guard.js";
import { readBody, sendConnectError } from "./http-body.js";
import { createCors } from "./cors.js";
import { rateLimitInterceptor, type RateLimitOptions } from "./rate-limit.js";
import { healthService } from "./health-service.js";
import { createLeanGrpc } from "./lean-grpc.js";
import { REFLECTION_SERVICES, reflectionServices } from "./reflection.js";
import { ConnectionsPerIp } from "./connections-per-ip.js";
import { guardSessions } from "./http2-session-guard.js";
import { createOnePortServer } from "./one-port.js";
import { streamLimit } from "./stream-limit.js";
import { ticketQueueService } from "./ticket-queue-service.js";
import { createUnaryCalls } from "./unary-calls.js";
import { sameSecret } from "./secrets.js";
import { createWebApp } from "./web-app.js";

/** Largest request message (RPC transports: ResourceExhausted) or REST body (413). */
export const MAX_REQUEST_BYTES = 64 * 1024;

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
  /** Streaming calls open at once in this process; more get RESOURCE_EXHAUSTED. */
  maxStreams: number;
  /**
   * HTTP/2 streams one connection may have open (SETTINGS_MAX_CONCURRENT_STREAMS);
   * clients queue the rest. Not much lower: node:http2 counts a stream until its
   * close is processed, a client reusing a slot a moment earlier is refused
   * (ENHANCE_YOUR_CALM), and after 100 refusals node ends the whole connection.
   */
  maxStreamsPerConnection: number;
  /** WatchStatus streams open at once per user of an event, in this process. */
  maxWatchesPerUser: number;
  /** Failed admin authentications per caller per minute; past it RESOURCE_EXHAUSTED. Always on. */
  adminFailuresPerMinute: number;
}

export const DEFAULT_LIMITS: ServerLimits = {
  maxConnections: 50_000,
  maxConnectionsPerIp: 0,
  idleTimeoutMs: 120_000,
  requestTimeoutMs: 30_000,
  goawayGraceMs: 10_000,
  maxStreams: 10_000,
  maxStreamsPerConnection: 2048,
  maxWatchesPerUser: 4,
  adminFailuresPerMinute: 30,
};

export interface ServerDeps {
  /** Defaults: DEFAULT_LIMITS. */
  limits?: Partial<ServerLimits>;
  /** Prometheus metrics, served at /metrics; absent: none. */
  metrics?: Metrics;
  /** METRICS_TOKEN: /metrics then wants `Authorization: Bearer <token>`; absent: open. */
  metricsToken?: string;
  /** Verifies admin JWTs (Authorization: Bearer); absent: only the static token. */
  adminJwt?: AdminJwtVerifier;
  /** Per-caller limits on RPCs marked throttled; absent: off. */
  rateLimit?: RateLimitOptions;
  /** Browser origins allowed by CORS ("*" for any); empty: same-origin only. */
  corsOrigins?: readonly string[];
  /** The built browser app served at / and /admin; default: dist/web. */
  webDir?: string;
  store: QueueStore;
  tickets: Tickets;
  hub: ChangeHub;
  adminToken: string;
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
 * Builds the server without starting it (tests and main share it): gRPC,
 * gRPC-web and Connect from connect-node, the REST gateway as its fallback, all
 * on one port.
 */
export function createTicketQueueServer(deps: ServerDeps): TicketQueueServer {
  const limits: ServerLimits = { ...DEFAULT_LIMITS, ...deps.limits };
  const services = [TicketQueueService, Health, ...REFLECTION_SERVICES];
  const streams = streamLimit(limits.maxStreams);
  const interceptors: Interceptor[] = [
    errorInterceptor(deps.log),
    streams.interceptor,
    auditInterceptor(services, deps.store, deps.log),
    adminAuthInterceptor(services, deps.adminToken, deps.adminJwt, {
      perMinute: limits.adminFailuresPerMinute,
      store: deps.store,
      caller: { trustedProxies: deps.rateLimit?.trustedProxies ?? new Set(), serviceTokens: deps.rateLimit?.serviceTokens ?? new Map() },
    }),
  ];
  if (deps.metrics) {
    interceptors.unshift(deps.metrics.interceptor);
    deps.metrics.observeOpenStreams(streams.open);
  }
  if (deps.rateLimit && deps.rateLimit.perMinute > 0) interceptors.push(rateLimitInterceptor(services, deps.store, deps.rateLimit));
  const impl = ticketQueueService(deps.store, deps.tickets, deps.hub, { maxWatchesPerUser: limits.maxWatchesPerUser });
  const health = healthService(deps.store, [TicketQueueService.typeName], deps.hub.closing);
  const reflection = reflectionServices([TicketQueueService, Health, ...REFLECTION_SERVICES]);
  const routes = (router: ConnectRouter): void => {
    router.service(TicketQueueService, impl);
    router.service(Health, health);
    router.service(ReflectionV1, reflection.v1);
    router.service(ReflectionV1Alpha, reflection.v1alpha);
  };
  // The unary RPCs the fast paths (gRPC on HTTP/2, REST) call without a Connect router.
  const unaryServices = [
    { service: TicketQueueService, impl },
    { service: Health, impl: health },
  ];
  const leanGrpc = createLeanGrpc({
    services: unaryServices,
    interceptors,
    maxRequestBytes: MAX_REQUEST_BYTES,
  });

  // REST shares handlers and interceptors; only its JSON differs: proto field
  // names, defaults always present, unknown fields refused.
  const restRouter = createConnectRouter({
    grpc: false,
    grpcWeb: false,
    interceptors,
    readMaxBytes: MAX_REQUEST_BYTES,
    jsonOptions: { ignoreUnknownFields: false, useProtoFieldName: true, alwaysEmitImplicit: true },
  });
  routes(restRouter);
  const restGateway = createRestGateway(restRouter, { maxBodyBytes: MAX_REQUEST_BYTES, unaryCalls: createUnaryCalls(unaryServices, interceptors, "connect") });

  const cors = createCors(deps.corsOrigins ?? []);
  const web = createWebApp(deps.webDir);
  if (!web.built) deps.log.warn({ dir: web.dir }, "the web app is not built (npm run build): / and /admin answer 404");
  // The same services and interceptors as connectNodeAdapter below (default JSON options).
  const connectRouter = createConnectRouter({ interceptors, readMaxBytes: MAX_REQUEST_BYTES });
  routes(connectRouter);
  const connectBinaryGuard = createConnectBinaryGuard(connectRouter, MAX_REQUEST_BYTES);
  let closing = false;
  const rpcHandler = connectNodeAdapter({
    routes,
    interceptors,
    contextValues: (req) => peerContext(req.socket.remoteAddress),
    readMaxBytes: MAX_REQUEST_BYTES,
    fallback: (req, res) => void restGateway(req, res),
  });
  const dispatch = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse): void => {
    // While draining, HTTP/1.1 connections close after their current response.
    if (closing && req.httpVersionMajor === 1) res.setHeader("connection", "close");
    if (cors(req, res)) return;
    // HEAD is GET without a body (Node sends none for HEAD): answered by the same routes.
    if (req.method === "HEAD") Object.defineProperty(req, "method", { value: "GET" });
    if (deps.metrics && req.url === "/metrics" && req.method === "GET") return void serveMetrics(deps.metrics, deps.metricsToken, req, res);
    if (web.handle(req, res)) return;
    if (connectBinaryGuard(req, res)) return;
    rpcHandler(req, res);
  };
  const { http1, http2: h2 } = createOnePortServer(
    (req, res) => {
      // A body on a method that takes none (GET, HEAD, OPTIONS, DELETE) is read and
      // dropped first: an answer sent before the body is consumed makes Node close
      // the kept-alive HTTP/1.1 connection under the client's next request.
      if (req.httpVersionMajor === 1 && !BODY_METHODS.has(req.method ?? "") && hasBody(req)) {
        void readBody(req, MAX_REQUEST_BYTES).then(
          () => dispatch(req, res),
          (err: unknown) => sendConnectError(res, new ConnectError(String(err instanceof Error ? err.message : err), Code.ResourceExhausted), { status: 413, headers: { connection: "close" } }),
        );
        return;
      }
      dispatch(req, res);
    },
    { firstByteTimeoutMs: 10_000, takeStream: leanGrpc, requestTimeoutMs: limits.requestTimeoutMs, maxStreamsPerConnection: limits.maxStreamsPerConnection },
  );
  http1.headersTimeout = Math.min(10_000, limits.requestTimeoutMs);
  http1.requestTimeout = limits.requestTimeoutMs;
  http1.keepAliveTimeout = 5_000;
  http1.maxConnections = limits.maxConnections;
  const sessionGuard = guardSessions(h2, limits);

  const perIp = new ConnectionsPerIp(limits.maxConnectionsPerIp);
  const sockets = new Set<Socket>();
  http1.prependListener("connection", (socket: Socket) => {
    if (!perIp.admit(socket)) return;
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });

  return {
    listen(port, host) {
      return new Promise((resolve, reject) => {
        http1.once("error", reject);
        http1.listen(port, host, () => {
          http1.off("error", reject);
          resolve(http1.address() as AddressInfo);
        });
      });
    },

    openStreams: streams.open,

    accept(socket) {
      // What net.Server does for the connections it accepts itself (small gRPC frames must not wait for Nagle).
      socket.setNoDelay(true);
      http1.emit("connection", socket);
    },

    async close(graceMs = 10_000) {
      closing = true;
      // Open watch streams end with Unavailable so their clients reconnect elsewhere.
      await deps.hub.close();
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

async function serveMetrics(metrics: Metrics, token: string | undefined, req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse): Promise<void> {
  const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? "")?.[1];
  if (token !== undefined && (bearer === undefined || !sameSecret(bearer, token))) {
    res.writeHead(401, { "content-type": "text/plain", "www-authenticate": 'Bearer realm="metrics"' });
    res.end("metrics need Authorization: Bearer <METRICS_TOKEN>\n");
    return;
  }
  try {
    const text = await metrics.exposition();
    res.writeHead(200, { "content-type": metrics.registry.contentType });
    res.end(text);
  } catch (err: unknown) {
    res.writeHead(503, { "content-type": "text/plain" });
    res.end(`metrics unavailable: ${String(err)}\n`);
  }
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
