import { getHeapStatistics } from "node:v8";
import { usableCpus } from "./process/cpu-limit.js";

/** The service's settings, read from the environment and validated once at start. */
export interface Config {
  port: number;
  host: string;
  /** Undefined: use 127.0.0.1:6379 if it answers, else start a local redis-server. */
  redisUrl: string | undefined;
  /** REDIS_CLUSTER_NODES: seed nodes of a Redis Cluster (host:port, comma-separated). */
  redisClusterNodes: string[];
  /** Where npm start looks for (or starts) a development Redis when REDIS_URL is unset. */
  devRedisPort: number;
  /** Undefined in development: main makes a random one and prints it once. */
  adminToken: string | undefined;
  capacity: number;
  /** MAX_WAITING: how many may wait in an event without a max_waiting of its own; 0: no limit. */
  maxWaiting: number;
  /** TICKET_KEY: Ed25519 private key (JWK JSON or PKCS#8 PEM); undefined: generated and kept in Redis. */
  ticketKey: string | undefined;
  ticketTtlSeconds: number;
  keyPrefix: string;
  redisCommandTimeoutMs: number;
  redisAutoPipelining: boolean;
  /** DURABILITY: fast (AOF as configured) or strict (acknowledged only once on disk and on a replica). */
  durability: "fast" | "strict";
  production: boolean;
  /** Processes serving the port (Node cluster); 1: no cluster. */
  workers: number;
  /**
   * WORKER_GC: how each worker collects garbage. "serial" (the default when there
   * are as many workers as cores): pauses run on the worker's own thread, since
   * V8's parallel GC helpers would compete with the other workers for the cores,
   * while freeing memory stays in the background. "single-threaded": all of it on
   * the worker's thread (V8's --single-threaded-gc). "parallel": V8's default.
   */
  workerGc: "serial" | "single-threaded" | "parallel";
  /** WORKERS > 1: a worker whose event loop has not answered the primary for this long is killed and replaced. */
  workerWatchdogMs: number;
  logLevel: string;
  /** Admin JWTs: a public key (JWK, JWKS JSON or SPKI PEM) or a JWKS URL, and an optional issuer. */
  adminJwtPublicKey: string | undefined;
  adminJwksUrl: string | undefined;
  adminJwtIssuer: string | undefined;
  /** User tokens: a public key (JWK, JWKS JSON or SPKI PEM) or a JWKS URL, the required audience, an optional issuer. */
  userJwtPublicKey: string | undefined;
  userJwksUrl: string | undefined;
  userJwtAudience: string | undefined;
  userJwtIssuer: string | undefined;
  /** Calls per minute per caller on Reserve and Cancel (each); 0: no limit. */
  rateLimitPerMinute: number;
  /** Peers whose X-Forwarded-For is believed. */
  trustedProxies: string[];
  /** SERVICE_TOKENS name:token pairs: services limited by name, not IP. */
  serviceTokens: Map<string, string>;
  /** Open connections at most per process. */
  maxConnections: number;
  /** Open connections from one address per process; 0: no cap (the default: carrier NAT). */
  maxConnectionsPerIp: number;
  /** An HTTP/2 connection with no open stream is closed after this. */
  idleTimeoutMs: number;
  /** A request must be complete (headers and body) within this. */
  requestTimeoutMs: number;
  /** Streaming calls open at once per process (default: from the heap limit). */
  maxStreams: number;
  /** HTTP/2 streams one connection may have open. */
  maxStreamsPerConnection: number;
  /** WatchStatus streams per user of an event, per process. */
  maxWatchesPerUser: number;
  /** Changes that move everyone in an event's line reach its watchers at most once per this (ms); 0: each at once. */
  watchUpdateMs: number;
  /** Failed admin authentications per caller per minute (always on). */
  adminFailuresPerMinute: number;
  /** CORS_ORIGINS: browser origins allowed to call the service ("*" for any). */
  corsOrigins: string[];
  /** METRICS_TOKEN: /metrics wants it as a bearer token; undefined: open. */
  metricsToken: string | undefined;
}

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const production = env["NODE_ENV"] === "production";
  const adminToken = nonEmpty(env["ADMIN_TOKEN"]);
  if (production && adminToken === undefined) {
    throw new ConfigError("ADMIN_TOKEN must be set when NODE_ENV=production");
  }
  const ticketKey = nonEmpty(env["TICKET_KEY"]);
  if (production && ticketKey === undefined) {
    throw new ConfigError("TICKET_KEY must be set when NODE_ENV=production (npm run ticket-key makes one)");
  }
  // One worker per CPU the container may use, not per core of the host.
  const cpus = usableCpus();
  const workers = integer(env, "WORKERS", cpus, 1, 256);
  return {
    port: integer(env, "PORT", 8000, 0, 65535),
    host: nonEmpty(env["HOST"]) ?? "0.0.0.0",
    redisUrl: nonEmpty(env["REDIS_URL"]),
    redisClusterNodes: list(env["REDIS_CLUSTER_NODES"]),
    devRedisPort: integer(env, "DEV_REDIS_PORT", 6379, 1, 65535),
    adminToken,
    capacity: integer(env, "CAPACITY", 500, 1, 10_000_000),
    maxWaiting: integer(env, "MAX_WAITING", 0, 0, 1_000_000_000),
    ticketKey,
    ticketTtlSeconds: integer(env, "TICKET_TTL_SECONDS", 7 * 24 * 3600, 60, 365 * 24 * 3600),
    keyPrefix: nonEmpty(env["KEY_PREFIX"]) ?? "tq",
    redisCommandTimeoutMs: integer(env, "REDIS_COMMAND_TIMEOUT_MS", 1000, 10, 60_000),
    redisAutoPipelining: boolean(env, "REDIS_AUTO_PIPELINING", false),
    durability: oneOf(env, "DURABILITY", ["fast", "strict"], "fast"),
    production,
    workers,
    workerGc: oneOf(env, "WORKER_GC", ["serial", "single-threaded", "parallel"], workers >= cpus ? "serial" : "parallel"),
    workerWatchdogMs: integer(env, "WORKER_WATCHDOG_SECONDS", 15, 2, 3600) * 1000,
    logLevel: nonEmpty(env["LOG_LEVEL"]) ?? "info",
    corsOrigins: list(env["CORS_ORIGINS"]),
    metricsToken: nonEmpty(env["METRICS_TOKEN"]),
    maxConnections: integer(env, "MAX_CONNECTIONS", 50_000, 1, 10_000_000),
    maxConnectionsPerIp: integer(env, "MAX_CONNECTIONS_PER_IP", 0, 0, 10_000_000),
    idleTimeoutMs: integer(env, "IDLE_TIMEOUT_SECONDS", 120, 1, 86_400) * 1000,
    requestTimeoutMs: integer(env, "REQUEST_TIMEOUT_SECONDS", 30, 1, 3600) * 1000,
    maxStreams: integer(env, "MAX_STREAMS", defaultMaxStreams(), 1, 10_000_000),
    maxStreamsPerConnection: integer(env, "MAX_STREAMS_PER_CONNECTION", 2048, 1, 2 ** 31 - 1),
    maxWatchesPerUser: integer(env, "MAX_WATCHES_PER_USER", 4, 1, 1000),
    watchUpdateMs: integer(env, "WATCH_UPDATE_MS", 200, 0, 10_000),
    adminFailuresPerMinute: integer(env, "ADMIN_AUTH_FAILURES_PER_MINUTE", 30, 1, 100_000),
    adminJwtPublicKey: nonEmpty(env["ADMIN_JWT_PUBLIC_KEY"]),
    adminJwksUrl: nonEmpty(env["ADMIN_JWKS_URL"]),
    adminJwtIssuer: nonEmpty(env["ADMIN_JWT_ISSUER"]),
    ...userIdentity(env),
    rateLimitPerMinute: integer(env, "RATE_LIMIT_PER_MINUTE", 0, 0, 1_000_000),
    trustedProxies: list(env["TRUSTED_PROXIES"]),
    serviceTokens: serviceTokens(env["SERVICE_TOKENS"]),
  };
}

/** USER_JWT_*: users known by their tokens; all unset: anonymous users (development). */
function userIdentity(env: NodeJS.ProcessEnv): Pick<Config, "userJwtPublicKey" | "userJwksUrl" | "userJwtAudience" | "userJwtIssuer"> {
  const userJwtPublicKey = nonEmpty(env["USER_JWT_PUBLIC_KEY"]);
  const userJwksUrl = nonEmpty(env["USER_JWKS_URL"]);
  const userJwtAudience = nonEmpty(env["USER_JWT_AUDIENCE"]);
  if ((userJwtPublicKey || userJwksUrl) && !userJwtAudience) {
    throw new ConfigError("USER_JWT_AUDIENCE is required with USER_JWT_PUBLIC_KEY or USER_JWKS_URL: a token for another service must not pass");
  }
  if (userJwtAudience?.startsWith("ticketqueue:")) {
    throw new ConfigError("USER_JWT_AUDIENCE must not be one of the service's own (ticketqueue:ticket, ticketqueue:admin): tickets, admin JWTs and user tokens never stand in for each other");
  }
  if (userJwksUrl && !/^https?:\/\//.test(userJwksUrl)) throw new ConfigError("USER_JWKS_URL must be an http(s) URL");
  return { userJwtPublicKey, userJwksUrl, userJwtAudience, userJwtIssuer: nonEmpty(env["USER_JWT_ISSUER"]) };
}

/**
 * Heap one open stream may cost on its most expensive path (SSE or gRPC-web
 * through connect-node; bench/stream-heap.ts measures them), with room to spare.
 */
export const HEAP_PER_STREAM_BYTES = 64 * 1024;

/** MAX_STREAMS by default: open streams may take a third of the heap limit (--max-old-space-size). */
export function defaultMaxStreams(heapLimitBytes = getHeapStatistics().heap_size_limit): number {
  return Math.max(100, Math.floor(heapLimitBytes / 3 / HEAP_PER_STREAM_BYTES));
}

function oneOf<const T extends string>(env: NodeJS.ProcessEnv, name: string, values: readonly T[], fallback: T): T {
  const raw = nonEmpty(env[name]);
  if (raw === undefined) return fallback;
  const value = values.find((v) => v === raw);
  if (value === undefined) throw new ConfigError(`${name} must be ${values.join(" or ")}, got ${JSON.stringify(raw)}`);
  return value;
}

function list(value: string | undefined): string[] {
  return (value ?? "")
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item !== "");
}

function serviceTokens(value: string | undefined): Map<string, string> {
  const tokens = new Map<string, string>();
  for (const pair of list(value)) {
    const colon = pair.indexOf(":");
    if (colon <= 0 || colon === pair.length - 1) throw new ConfigError("SERVICE_TOKENS must be name:token pairs, comma-separated");
    tokens.set(pair.slice(0, colon), pair.slice(colon + 1));
  }
  return tokens;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === "" ? undefined : value;
}

function boolean(env: NodeJS.ProcessEnv, name: string, fallback: boolean): boolean {
  const raw = nonEmpty(env[name])?.trim().toLowerCase();
  if (raw === undefined) return fallback;
  if (raw !== "true" && raw !== "false") throw new ConfigError(`${name} must be true or false, got ${JSON.stringify(env[name])}`);
  return raw === "true";
}

function integer(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = nonEmpty(env[name]);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  }
  return value;
}
