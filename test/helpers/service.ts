import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, inject } from "vitest";
import { pino, type Logger } from "pino";
import { buildApp, type Limits } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";
import type { QueueStore } from "../../src/queue/queue-store.js";
import type { DurabilityMode } from "../../src/redis/durability.js";
import type { AdminJwtVerifier } from "../../src/rpc/admin-auth.js";
import type { JwtVerifier } from "../../src/rpc/jwt-verifier.js";
import type { RateLimitOptions } from "../../src/rpc/rate-limit.js";
import type { RpcSurface } from "../../src/rpc/rpc-surface.js";
import type { TicketQueueServer } from "../../src/server/server.js";
import type { Tickets } from "../../src/tickets/tickets.js";
import type { ChangeHub } from "../../src/watch/change-hub.js";
import { startTestRedis, type TestRedis } from "./redis-server.js";

export const TEST_ADMIN_TOKEN = "test-admin-token";

/**
 * True under npm run test:cluster, where services use the shared cluster: tests
 * that stop, pause or slow the file's own redis-server do not apply there.
 */
export const ON_CLUSTER = (inject("clusterNodes") as string[] | undefined) !== undefined;

export interface TestService {
  port: number;
  baseUrl: string;
  /** host:port for gRPC clients. */
  address: string;
  redis: Redis;
  store: QueueStore;
  prefix: string;
  server: TicketQueueServer;
  tickets: Tickets;
  hub: ChangeHub;
  /** The RPC surface the transports serve (a test may serve it another way to compare). */
  rpc: RpcSurface;
  close(): Promise<void>;
}

export interface TestServiceOptions {
  capacity?: number;
  commandTimeoutMs?: number;
  adminToken?: string;
  corsOrigins?: string[];
  /** Per-caller limits; absent: off (the service's default is 120 a minute). */
  rateLimit?: RateLimitOptions;
  adminJwt?: AdminJwtVerifier;
  /** User tokens: identity mode (absent: anonymous users). */
  userJwt?: JwtVerifier;
  limits?: Partial<Limits>;
  metricsToken?: string;
  durability?: DurabilityMode;
  clusterNodes?: string[];
  /** A restarted service passes the port and prefix of the one it replaces. */
  port?: number;
  prefix?: string;
  /** Where the service logs (default: silent, or TQ_TEST_LOG's level). */
  log?: Logger;
  /** WATCH_UPDATE_MS (default the service's). */
  watchUpdateMs?: number;
}

/**
 * The real service, built by the same builder as `npm start` (src/app.ts), on
 * a free port against the given real Redis, with its own key prefix so tests
 * never see each other's queues.
 */
export async function startTestService(redisUrl: string, options: TestServiceOptions = {}): Promise<TestService> {
  // npm run test:cluster: the run's shared Redis Cluster stands in for the file's redis-server.
  const clusterNodes = options.clusterNodes ?? (ON_CLUSTER ? inject("clusterNodes") : undefined);
  const prefix = options.prefix ?? `test-${randomUUID()}`;
  const config = {
    ...loadConfig({}),
    keyPrefix: prefix,
    capacity: options.capacity ?? 500,
    redisCommandTimeoutMs: options.commandTimeoutMs ?? 1000,
    redisClusterNodes: clusterNodes ?? [],
    durability: options.durability ?? "fast",
    ticketTtlSeconds: 3600,
    corsOrigins: options.corsOrigins ?? [],
    metricsToken: options.metricsToken,
    rateLimitPerMinute: options.rateLimit?.perMinute ?? 0,
    trustedProxies: [...(options.rateLimit?.trustedProxies ?? [])],
    serviceTokens: new Map(options.rateLimit?.serviceTokens ?? []),
    ...(options.watchUpdateMs === undefined ? {} : { watchUpdateMs: options.watchUpdateMs }),
  };
  // Silent unless TQ_TEST_LOG names a level (e.g. TQ_TEST_LOG=error to see what a failing test hit).
  const log = options.log ?? pino({ level: process.env["TQ_TEST_LOG"] ?? "silent" });
  const app = await buildApp({ config, redisUrl, log, adminToken: options.adminToken ?? TEST_ADMIN_TOKEN, adminJwt: options.adminJwt, userJwt: options.userJwt, limits: options.limits, holdSweepMs: 100 });
  const { port } = await app.listen(options.port ?? 0, "127.0.0.1");
  return {
    port,
    baseUrl: `http://127.0.0.1:${port}`,
    address: `127.0.0.1:${port}`,
    redis: app.redis,
    store: app.store,
    prefix,
    server: app.server,
    tickets: app.tickets,
    hub: app.hub,
    rpc: app.rpc,
    close: () => app.stop(1000),
  };
}

/** What useTestService started: read it inside tests and hooks (it is filled in beforeAll). */
export interface TestSetup {
  redis: TestRedis;
  svc: TestService;
}

/**
 * A real redis-server (started with `redisArgs`) and the service on it for the
 * tests of the file or describe block where it is called: started before the
 * first test, stopped after the last.
 */
export function useTestService(options: TestServiceOptions | (() => Promise<TestServiceOptions>) = {}, redisArgs: string[] = []): TestSetup {
  let redis: TestRedis | undefined;
  let svc: TestService | undefined;
  beforeAll(async () => {
    redis = await startTestRedis(redisArgs);
    svc = await startTestService(redis.url, typeof options === "function" ? await options() : options);
  });
  afterAll(async () => {
    await svc?.close();
    await redis?.dispose();
  });
  const started = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error("useTestService: read inside a test or hook, after beforeAll");
    return value;
  };
  return {
    get redis() {
      return started(redis);
    },
    get svc() {
      return started(svc);
    },
  };
}
