import type { DescMethod, DescService } from "@bufbuild/protobuf";
import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";
import { ServerReflection as ReflectionV1 } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ReflectionV1Alpha } from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { Health } from "../../gen/health/v1/health_pb.js";
import { TicketQueueService } from "../../gen/ticketqueue/v1/ticket_queue_pb.js";
import type { Metrics } from "../observability/metrics.js";
import type { QueueStore } from "../queue/queue-store.js";
import type { Challenges } from "../tickets/challenges.js";
import type { Tickets } from "../tickets/tickets.js";
import type { ChangeHub } from "../watch/change-hub.js";
import { adminAuthenticator, adminAuthInterceptor, type AdminJwtVerifier } from "./admin-auth.js";
import { auditInterceptor } from "./audit-log.js";
import type { CallerOptions } from "./caller.js";
import { errorInterceptor } from "./errors.js";
import type { JwtVerifier } from "./jwt-verifier.js";
import { userIdentityInterceptor } from "./user-identity.js";
import { healthService } from "./health-service.js";
import { rateLimitInterceptor } from "./rate-limit.js";
import { REFLECTION_SERVICES, reflectionServices } from "./reflection.js";
import { streamLimit } from "./stream-limit.js";
import { ticketQueueService } from "./ticket-queue-service.js";

/** Largest request message (RPC transports: ResourceExhausted) or REST body (413). */
export const MAX_REQUEST_BYTES = 64 * 1024;

export interface RpcOptions {
  store: QueueStore;
  tickets: Tickets;
  challenges: Challenges;
  hub: ChangeHub;
  adminToken: string;
  /** Verifies admin JWTs (Authorization: Bearer); absent: only the static token. */
  adminJwt?: AdminJwtVerifier;
  /** Verifies user tokens (USER_JWT_*); absent: anonymous users, as in development. */
  userJwt?: JwtVerifier;
  /** Calls per minute per caller on the RPCs marked throttled; 0: off. */
  rateLimitPerMinute: number;
  /** Who a caller is, for both per-caller limits: service tokens and trusted proxies. */
  caller: CallerOptions;
  /** Failed admin authentications per caller per minute (always on). */
  adminFailuresPerMinute: number;
  /** Streaming calls open at once in this process. */
  maxStreams: number;
  /** WatchStatus streams per user of an event, in this process. */
  maxWatchesPerUser: number;
  /** Counts and times every call; absent: none. */
  metrics?: Metrics;
  /** A span per RPC (OpenTelemetry), when tracing is on. */
  tracing?: Interceptor;
  log: Logger;
}

/** A service and its implementation. */
export interface ServiceEntry {
  service: DescService;
  impl: object;
}

/**
 * Everything a transport needs to serve the RPCs, and nothing about
 * transports: the services, their implementations, the interceptors around
 * every call, and the routes for a Connect router. The server (gRPC,
 * gRPC-web, Connect) and the REST gateway both adapt HTTP to this.
 */
export interface RpcSurface {
  /** Every served service (for admin and throttling rules read from the proto). */
  services: readonly DescService[];
  /** The services whose calls the fast paths make without a Connect router (all but reflection). */
  entries: readonly ServiceEntry[];
  /** Outermost first: tracing (when on), metrics, errors and request ids, stream bound, audit, admin auth, rate limit. */
  interceptors: readonly Interceptor[];
  /** Registers every service on a Connect router. */
  routes(router: ConnectRouter): void;
  /** Streaming calls open now. */
  openStreams(): number;
  /**
   * A call its transport answered before the interceptors ran (a message that
   * does not decode, a bad deadline, a body past the limits): counted in the
   * metrics as the interceptors count a call, so that a flood of them shows.
   */
  refused: Refused;
}

export type Refused = (method: DescMethod, err: unknown) => void;

export function createRpcSurface(options: RpcOptions): RpcSurface {
  const { store, log } = options;
  const services = [TicketQueueService, Health, ...REFLECTION_SERVICES];
  // Health.Watch and reflection need no credential: they share a small number of places.
  const anonymousStreams = new Set([Health, ...REFLECTION_SERVICES].flatMap((service) => service.methods.filter((m) => m.methodKind !== "unary")));
  const streams = streamLimit(options.maxStreams, anonymousStreams);
  const admin = adminAuthenticator(options.adminToken, options.adminJwt, { perMinute: options.adminFailuresPerMinute, store, caller: options.caller });
  const interceptors: Interceptor[] = [
    errorInterceptor(log),
    streams.interceptor,
    auditInterceptor(services, store, log),
    adminAuthInterceptor(services, admin),
  ];
  if (options.userJwt) interceptors.push(userIdentityInterceptor(services, { user: options.userJwt, admin, caller: options.caller }));
  if (options.metrics) {
    interceptors.unshift(options.metrics.interceptor);
    options.metrics.observeOpenStreams(streams.open);
  }
  // Tracing (when on) is outermost: its span covers everything else, metrics included.
  if (options.tracing) interceptors.unshift(options.tracing);
  if (options.rateLimitPerMinute > 0) interceptors.push(rateLimitInterceptor(services, store, { perMinute: options.rateLimitPerMinute, ...options.caller }));
  const impl = ticketQueueService(store, options.tickets, options.challenges, options.hub, { maxWatchesPerUser: options.maxWatchesPerUser });
  const health = healthService(store, [TicketQueueService.typeName], options.hub.closing);
  const reflection = reflectionServices(services);
  return {
    services,
    entries: [
      { service: TicketQueueService, impl },
      { service: Health, impl: health },
    ],
    interceptors,
    routes(router) {
      router.service(TicketQueueService, impl);
      router.service(Health, health);
      router.service(ReflectionV1, reflection.v1);
      router.service(ReflectionV1Alpha, reflection.v1alpha);
    },
    openStreams: streams.open,
    refused: options.metrics?.refused ?? (() => undefined),
  };
}
