import { getOption, type DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextKey, type ContextValues, type Interceptor } from "@connectrpc/connect";
import { admin } from "../../gen/ticketqueue/v1/options_pb.js";
import type { QueueStore } from "../queue/queue-store.js";
import { callerIdentity, peerAddressKey, type CallerOptions } from "./caller.js";
import { interceptOnly } from "./intercept-only.js";
import { jwtVerifier, type JwtVerifier } from "./jwt-verifier.js";
import { sameSecret } from "./secrets.js";

/** The metadata key (HTTP header) that carries the static admin token. */
export const ADMIN_TOKEN_HEADER = "x-token";

/** The audience an admin JWT must carry: a ticket (ticketqueue:ticket) is never an admin credential. */
export const ADMIN_AUDIENCE = "ticketqueue:admin";

/** Who made an admin call ("token", or "jwt:<sub>"), for the audit log. */
export const adminIdentityKey = createContextKey<string | undefined>(undefined, { description: "admin identity" });

/** Verifies an admin JWT; answers its subject. */
export type AdminJwtVerifier = JwtVerifier;

/**
 * An admin JWT verifier from ADMIN_JWT_PUBLIC_KEY (a public JWK, a JWKS JSON or
 * SPKI PEM) or ADMIN_JWKS_URL; undefined when neither is set. The ticket key
 * never verifies admin calls, and a user token (another audience) is no admin JWT.
 */
export async function adminJwtVerifier(options: { publicKey?: string; jwksUrl?: string; issuer?: string }): Promise<AdminJwtVerifier | undefined> {
  return jwtVerifier({ ...options, audience: ADMIN_AUDIENCE, algorithms: ["EdDSA", "ES256", "RS256"], what: "the admin JWT" });
}

/**
 * Failed admin authentications per caller, always on (ADMIN_AUTH_FAILURES_PER_MINUTE):
 * past the limit a caller's admin calls answer RESOURCE_EXHAUSTED without a
 * credential being checked, whatever it sends, until the minute has refilled.
 */
export interface AdminFailureLimit {
  perMinute: number;
  store: QueueStore;
  caller: CallerOptions;
}

/**
 * Requires an admin credential on every RPC the proto marks `(ticketqueue.v1.admin)`:
 * the static token in `x-token`, compared in constant time, or (no x-token sent)
 * `Authorization: Bearer <JWT>` (audience ticketqueue:admin) when a verifier is configured.
 * Records who it was in the call's context values.
 */
export function adminAuthInterceptor(services: readonly DescService[], authenticate: AdminAuthenticator): Interceptor {
  return interceptOnly(adminMethodsOf(services), (next) => async (req) => {
    req.contextValues.set(adminIdentityKey, await authenticate(req));
    return next(req);
  });
}

/** Checks a call's admin credential within the failure limit; answers who it is ("token" or "jwt:<sub>"). */
export type AdminAuthenticator = (req: { header: Headers; method: { name: string }; contextValues: ContextValues }) => Promise<string>;

export function adminAuthenticator(adminToken: string, jwt: AdminJwtVerifier | undefined, failures: AdminFailureLimit): AdminAuthenticator {
  const limit = (caller: string, count: boolean) => failures.store.allowCall(caller, failures.perMinute, 60_000, count);
  const local = new LocalBucket(failures.perMinute, 60_000);
  return async (req) => {
    const caller = `admin-auth:${callerIdentity(req.header, req.contextValues.get(peerAddressKey), failures.caller)}`;
    // The failures of every worker, kept in Redis.
    const before = await limit(caller, false);
    if (!before.allowed) throw tooManyFailures(before.retryAfterMs);
    // And in this process, where a failure is counted in the same synchronous step as the
    // check that found it (the static token is compared synchronously): 2,000 guesses sent
    // at once all passed one reading of Redis. Good credentials count nothing, so a burst
    // of them (after a Redis pause) is never refused.
    if (!local.has(caller)) throw tooManyFailures(local.retryAfterMs(caller));
    // An x-token, when sent, is what the caller means: a proxy in front may add its own
    // Authorization: Bearer, which must not stand in the way of the static token.
    const bearer = req.header.get(ADMIN_TOKEN_HEADER) ? undefined : /^Bearer\s+(\S+)$/i.exec(req.header.get("authorization") ?? "")?.[1];
    try {
      // A JWT cannot be guessed: its (asynchronous) check may overlap others.
      return bearer !== undefined && jwt ? `jwt:${await jwt(bearer)}` : staticToken(req.header, req.method.name, adminToken, jwt !== undefined);
    } catch (err: unknown) {
      if (!(err instanceof ConnectError) || err.code !== Code.Unauthenticated) throw err;
      local.take(caller);
      const after = await limit(caller, true);
      throw after.allowed ? err : tooManyFailures(after.retryAfterMs);
    }
  };
}

/** "token" for the static admin token, compared in constant time; else Unauthenticated. Synchronous. */
function staticToken(header: Headers, rpc: string, adminToken: string, jwtAccepted: boolean): string {
  const token = header.get(ADMIN_TOKEN_HEADER);
  if (token) {
    if (!sameSecret(token, adminToken)) throw new ConnectError("the admin token is not valid", Code.Unauthenticated);
    return "token";
  }
  throw new ConnectError(`${rpc} needs the admin token in the ${ADMIN_TOKEN_HEADER} header${jwtAccepted ? " or an admin JWT as Authorization: Bearer" : ""}`, Code.Unauthenticated);
}

/**
 * A token bucket per caller in this process: `perPeriod` takes, refilled evenly
 * over `periodMs`. Synchronous, so concurrent calls cannot all pass one check.
 */
class LocalBucket {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly perPeriod: number,
    private readonly periodMs: number,
  ) {}

  has(key: string): boolean {
    // A caller with no failures has no bucket (good calls leave none behind).
    return !this.buckets.has(key) || this.refilled(key).tokens >= 1;
  }

  take(key: string): void {
    this.refilled(key).tokens -= 1;
  }

  retryAfterMs(key: string): number {
    const bucket = this.refilled(key);
    return Math.ceil(((1 - bucket.tokens) * this.periodMs) / this.perPeriod);
  }

  private refilled(key: string): { tokens: number; at: number } {
    const now = Date.now();
    let bucket = this.buckets.get(key);
    if (!bucket) {
      // Bounded: a flood of distinct callers forgets the oldest (they start full again).
      if (this.buckets.size >= 100_000) this.buckets.delete(this.buckets.keys().next().value ?? "");
      bucket = { tokens: this.perPeriod, at: now };
      this.buckets.set(key, bucket);
    }
    bucket.tokens = Math.min(this.perPeriod, bucket.tokens + ((now - bucket.at) * this.perPeriod) / this.periodMs);
    bucket.at = now;
    return bucket;
  }
}

function tooManyFailures(retryAfterMs: number): ConnectError {
  const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
  return new ConnectError(`too many failed admin logins from this caller: retry in ${seconds} s`, Code.ResourceExhausted, { "retry-after": String(seconds) });
}

export function adminMethodsOf(services: readonly DescService[]) {
  return new Set(services.flatMap((s) => s.methods).filter((m) => getOption(m, admin)));
}
