import { getOption, type DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextKey, type Interceptor } from "@connectrpc/connect";
import { createLocalJWKSet, createRemoteJWKSet, errors as joseErrors, importJWK, importSPKI, jwtVerify, type JWK, type JWTVerifyResult } from "jose";
import { admin } from "../../gen/ticketqueue/v1/options_pb.js";
import { interceptOnly } from "./intercept-only.js";
import { sameSecret } from "./secrets.js";

/** The metadata key (HTTP header) that carries the static admin token. */
export const ADMIN_TOKEN_HEADER = "x-token";

/** The audience an admin JWT must carry: a ticket (ticketqueue:ticket) is never an admin credential. */
export const ADMIN_AUDIENCE = "ticketqueue:admin";

/** Who made an admin call ("token", or "jwt:<sub>"), for the audit log. */
export const adminIdentityKey = createContextKey<string | undefined>(undefined, { description: "admin identity" });

/** Verifies an admin JWT; answers its subject. */
export type AdminJwtVerifier = (token: string) => Promise<string>;

/**
 * An admin JWT verifier from ADMIN_JWT_PUBLIC_KEY (a public JWK, a JWKS JSON or
 * SPKI PEM) or ADMIN_JWKS_URL; undefined when neither is set. The ticket key
 * never verifies admin calls.
 */
export async function adminJwtVerifier(options: { publicKey?: string; jwksUrl?: string; issuer?: string }): Promise<AdminJwtVerifier | undefined> {
  const checks = { audience: ADMIN_AUDIENCE, issuer: options.issuer };
  let verify: (token: string) => Promise<JWTVerifyResult>;
  if (options.jwksUrl) {
    const jwks = createRemoteJWKSet(new URL(options.jwksUrl));
    verify = (token) => jwtVerify(token, jwks, checks);
  } else if (options.publicKey) {
    const text = options.publicKey.trim();
    const json = text.startsWith("{") ? (JSON.parse(text) as JWK & { keys?: JWK[] }) : undefined;
    if (json?.keys) {
      const jwks = createLocalJWKSet({ keys: json.keys });
      verify = (token) => jwtVerify(token, jwks, checks);
    } else {
      const key = json ? await importJWK(json, json.alg ?? "EdDSA") : await importSPKI(text, "EdDSA");
      verify = (token) => jwtVerify(token, key, checks);
    }
  } else {
    return undefined;
  }
  return async (token) => {
    try {
      const verified = await verify(token);
      if (!verified.payload.sub) throw new ConnectError("the admin JWT has no subject", Code.Unauthenticated);
      return verified.payload.sub;
    } catch (err: unknown) {
      if (err instanceof ConnectError) throw err;
      throw new ConnectError(err instanceof joseErrors.JWTExpired ? "the admin JWT has expired" : "the admin JWT is not valid", Code.Unauthenticated);
    }
  };
}

/**
 * Requires an admin credential on every RPC the proto marks `(ticketqueue.v1.admin)`:
 * `Authorization: Bearer <JWT>` (audience ticketqueue:admin) when a verifier is
 * configured, or the static token in `x-token`, compared in constant time.
 * Records who it was in the call's context values.
 */
export function adminAuthInterceptor(services: readonly DescService[], adminToken: string, jwt?: AdminJwtVerifier): Interceptor {
  return interceptOnly(adminMethodsOf(services), (next) => async (req) => {
    const bearer = /^Bearer\s+(\S+)$/i.exec(req.header.get("authorization") ?? "")?.[1];
    const token = req.header.get(ADMIN_TOKEN_HEADER);
    if (bearer !== undefined && jwt) {
      req.contextValues.set(adminIdentityKey, `jwt:${await jwt(bearer)}`);
    } else if (token) {
      if (!sameSecret(token, adminToken)) throw new ConnectError("the admin token is not valid", Code.Unauthenticated);
      req.contextValues.set(adminIdentityKey, "token");
    } else {
      throw new ConnectError(`${req.method.name} needs the admin token in the ${ADMIN_TOKEN_HEADER} header${jwt ? " or an admin JWT as Authorization: Bearer" : ""}`, Code.Unauthenticated);
    }
    return next(req);
  });
}

export function adminMethodsOf(services: readonly DescService[]) {
  return new Set(services.flatMap((s) => s.methods).filter((m) => getOption(m, admin)));
}
