import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import { inject } from "vitest";
import { pino } from "pino";
import { startHoldSweeper } from "../../src/queue/hold-sweeper.js";
import { ticketKeyKey } from "../../src/queue/keys.js";
import { QueueStore } from "../../src/queue/queue-store.js";
import { createDurabilityGate, type DurabilityMode } from "../../src/redis/durability.js";
import { createRedisClient } from "../../src/redis/redis-client.js";
import { createMetrics } from "../../src/observability/metrics.js";
import type { AdminJwtVerifier } from "../../src/server/admin-auth.js";
import type { RateLimitOptions } from "../../src/server/rate-limit.js";
import { createTicketQueueServer, type ServerLimits, type TicketQueueServer } from "../../src/server/server.js";
import { Tickets } from "../../src/tickets/tickets.js";
import { connectChangeHub, type ChangeHub } from "../../src/watch/change-hub.js";

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
  close(): Promise<void>;
}

/**
 * The real server on a free port, against the given real Redis, with its own key
 * prefix so tests never see each other's queues.
 */
export async function startTestService(redisUrl: string, options: { capacity?: number; commandTimeoutMs?: number; adminToken?: string; corsOrigins?: string[]; rateLimit?: RateLimitOptions; adminJwt?: AdminJwtVerifier; limits?: Partial<ServerLimits>; metricsToken?: string; durability?: DurabilityMode; clusterNodes?: string[]; port?: number; prefix?: string } = {}): Promise<TestService> {
  // npm run test:cluster: the run's shared Redis Cluster stands in for the file's redis-server.
  const clusterNodes = options.clusterNodes ?? (ON_CLUSTER ? inject("clusterNodes") : undefined);
  const redisOptions = { url: redisUrl, clusterNodes, commandTimeoutMs: options.commandTimeoutMs ?? 1000 };
  const redis = createRedisClient(redisOptions);
  redis.on("error", () => undefined); // outages are expected in some tests; calls report them
  await redis.connect();
  // A restarted service passes the port and prefix of the one it replaces.
  const prefix = options.prefix ?? `test-${randomUUID()}`;
  const durability = await createDurabilityGate(redis, options.durability ?? "fast", options.commandTimeoutMs ?? 1000);
  // Silent unless TQ_TEST_LOG names a level (e.g. TQ_TEST_LOG=error to see what a failing test hit).
  const log = pino({ level: process.env["TQ_TEST_LOG"] ?? "silent" });
  const store = new QueueStore(redis, { prefix, defaultCapacity: options.capacity ?? 500, durability, onInvalidStored: (event, fields) => log.warn({ event, fields }, "invalid stored fields") });
  const tickets = new Tickets(redis, { configuredKey: undefined, redisKey: ticketKeyKey(prefix), ttlSeconds: 3600 });
  const sweeper = startHoldSweeper(store, log, 100);
  const hub = await connectChangeHub(redisOptions, store, log);
  const server = createTicketQueueServer({ metrics: createMetrics(store), store, tickets, hub, adminToken: options.adminToken ?? TEST_ADMIN_TOKEN, log, corsOrigins: options.corsOrigins, rateLimit: options.rateLimit, adminJwt: options.adminJwt, limits: options.limits, metricsToken: options.metricsToken });
  const { port } = await server.listen(options.port ?? 0, "127.0.0.1");
  return {
    port,
    baseUrl: `http://127.0.0.1:${port}`,
    address: `127.0.0.1:${port}`,
    redis,
    store,
    prefix,
    server,
    tickets,
    hub,
    async close() {
      sweeper.stop();
      await server.close(1000);
      redis.disconnect();
    },
  };
}
