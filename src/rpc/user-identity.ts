import { getOption, type DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextKey, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import { decodeJwt } from "jose";
import { owned } from "../../gen/ticketqueue/v1/options_pb.js";
import type { AdminAuthenticator } from "./admin-auth.js";
import { ADMIN_AUDIENCE, ADMIN_TOKEN_HEADER } from "./admin-auth.js";
import { SERVICE_TOKEN_HEADER, serviceName, type CallerOptions } from "./caller.js";
import { interceptOnly } from "./intercept-only.js";
import { jwtVerifier, type JwtVerifier } from "./jwt-verifier.js";
import { MAX_SUBJECT_BYTES, MAX_USER_ID_BYTES } from "../queue/ids.js";

/**
 * The user token verifier of USER_JWT_PUBLIC_KEY or USER_JWKS_URL (undefined when
 * neither is set): EdDSA, ES256 or RS256, `exp` required, 30 s of clock skew, a
 * `sub` of up to 255 bytes, and the configured audience (never one of ours).
 */
export function userJwtVerifier(config: { userJwtPublicKey?: string; userJwksUrl?: string; userJwtAudience?: string; userJwtIssuer?: string }, jwksCooldownMs?: number): JwtVerifier | undefined {
  return jwtVerifier({
    publicKey: config.userJwtPublicKey,
    jwksUrl: config.userJwksUrl,
    audience: config.userJwtAudience ?? "",
    issuer: config.userJwtIssuer,
    algorithms: ["EdDSA", "ES256", "RS256"],
    what: "the user token",
    maxSubjectBytes: MAX_SUBJECT_BYTES,
    clockToleranceSeconds: 30,
    jwksCooldownMs,
  });
}

/** Who an `(owned)` call acts as, when user identity is configured. */
export type Caller =
  /** A user, by the `sub` of their token. */
  | { kind: "user"; sub: string }
  /** A service (SERVICE_TOKENS) acting for the users it has authenticated. */
  | { kind: "service"; name: string }
  /** An operator (the admin token or an admin JWT): may read any status. */
  | { kind: "operator" }
  /** No credential: a ticket may still prove the entry where the request carries one. */
  | { kind: "anonymous" };

/** Set on every `(owned)` call while user identity is configured; undefined otherwise. */
export const callerKey = createContextKey<Caller | undefined>(undefined, { description: "caller" });

export interface UserIdentityOptions {
  /** Verifies user tokens (USER_JWT_PUBLIC_KEY or USER_JWKS_URL, USER_JWT_AUDIENCE). */
  user: JwtVerifier;
  /** An operator's credential, within the admin failure limit. */
  admin: AdminAuthenticator;
  caller: CallerOptions;
}

/**
 * On the RPCs the proto marks `(owned)`: who the caller is, from a service
 * credential, a user token (Authorization: Bearer), or an operator's credential.
 * A credential that is sent and does not verify is UNAUTHENTICATED, even where a
 * ticket would have done: a client never learns that a bad token was ignored.
 */
export function userIdentityInterceptor(services: readonly DescService[], options: UserIdentityOptions): Interceptor {
  const methods = new Set(services.flatMap((s) => s.methods).filter((m) => getOption(m, owned)));
  return interceptOnly(methods, (next) => async (req) => {
    req.contextValues.set(callerKey, await identify(req, options));
    return next(req);
  });
}

async function identify(req: Parameters<AdminAuthenticator>[0], options: UserIdentityOptions): Promise<Caller> {
  const service = req.header.get(SERVICE_TOKEN_HEADER);
  if (service !== null) {
    const name = serviceName(service, options.caller);
    if (name === undefined) throw new ConnectError(`the ${SERVICE_TOKEN_HEADER} is not valid`, Code.Unauthenticated);
    return { kind: "service", name };
  }
  const bearer = /^Bearer\s+(\S+)$/i.exec(req.header.get("authorization") ?? "")?.[1];
  if (bearer !== undefined) {
    try {
      return { kind: "user", sub: await options.user(bearer) };
    } catch (err: unknown) {
      // An operator's admin JWT is tried as such (and counted as a failed admin login
      // when it fails); any other bad token is the user's own error.
      if (!audienceOf(bearer).includes(ADMIN_AUDIENCE)) throw err;
      await options.admin(req);
      return { kind: "operator" };
    }
  }
  if (req.header.get(ADMIN_TOKEN_HEADER) !== null) {
    await options.admin(req);
    return { kind: "operator" };
  }
  return { kind: "anonymous" };
}

/** The audiences a JWT claims, read without verifying it (only to choose the verifier). */
function audienceOf(token: string): string[] {
  try {
    const aud = decodeJwt(token).aud;
    return aud === undefined ? [] : typeof aud === "string" ? [aud] : aud;
  } catch {
    return [];
  }
}

/** What a handler may do for `userId` (the request's `user_id`, "" when empty). */
export interface Acting {
  /** The user the call acts for: `user_id`, or the token's `sub` when that was empty. */
  userId: string;
  /** The caller proved it acts for this user (a user token or a service): no ticket is needed. */
  proven: boolean;
  /** Longest user id accepted: a token's `sub` may be longer than an id a client chooses. */
  maxBytes: number;
  /** Users are known by their tokens here (user identity configured). */
  identified: boolean;
}

/**
 * The user an `(owned)` call acts for, and whether the caller proved it. Without
 * user identity configured every caller is anonymous and `user_id` is taken as
 * given, as before. With it: a user acts for themselves only (PERMISSION_DENIED
 * for another id), a service for any user it names, an operator reads statuses
 * (`operatorMay`), and an anonymous caller only where a ticket will be checked
 * (`ticketWillDo`); otherwise UNAUTHENTICATED.
 */
export function actingFor(ctx: HandlerContext, userId: string, rule: { ticketWillDo: boolean; operatorMay: boolean }): Acting {
  const caller = ctx.values.get(callerKey);
  if (caller === undefined) return { userId, proven: false, maxBytes: MAX_USER_ID_BYTES, identified: false };
  const maxBytes = MAX_SUBJECT_BYTES;
  const identified = true;
  switch (caller.kind) {
    case "user":
      if (userId !== "" && userId !== caller.sub) throw new ConnectError("user_id is not the signed-in user (the token's subject)", Code.PermissionDenied);
      return { userId: caller.sub, proven: true, maxBytes, identified };
    case "service":
      if (userId === "") throw new ConnectError("user_id is required when a service acts for a user", Code.InvalidArgument);
      return { userId, proven: true, maxBytes, identified };
    case "operator":
      if (rule.operatorMay) return { userId, proven: false, maxBytes, identified };
      throw new ConnectError("an operator's credential does not act for a user: send the user's token", Code.PermissionDenied);
    case "anonymous":
      if (rule.ticketWillDo) return { userId, proven: false, maxBytes, identified };
      throw new ConnectError("this service knows its users: send Authorization: Bearer <your token>", Code.Unauthenticated);
  }
}
