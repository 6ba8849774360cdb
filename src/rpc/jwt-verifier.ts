import { createPublicKey, type JsonWebKey, type KeyObject } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { createLocalJWKSet, createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWK, type JWSAlgorithm, type JWTVerifyGetKey } from "jose";

/** Verifies a JWT and answers its subject, or throws UNAUTHENTICATED naming `what` was wrong. */
export type JwtVerifier = (token: string) => Promise<string>;

export interface JwtVerifierOptions {
  /** A public JWK, a JWKS (JSON with `keys`) or an SPKI PEM. */
  publicKey?: string;
  /** A JWKS URL, fetched and cached by jose (an unknown `kid` fetches again, at most once per cooldown). */
  jwksUrl?: string;
  /** Required `aud`: a token for another audience (a ticket, an admin JWT) is refused. */
  audience: string;
  issuer?: string;
  algorithms: JWSAlgorithm[];
  /** How the token is named in errors: "the admin JWT", "the user token". */
  what: string;
  /** Longest `sub` accepted, in UTF-8 bytes. */
  maxSubjectBytes?: number;
  /** Clock skew allowed on exp/nbf/iat, in seconds. */
  clockToleranceSeconds?: number;
  /** How long after a JWKS fetch an unknown `kid` may fetch again (jose's default: 30 s). */
  jwksCooldownMs?: number;
}

/**
 * A verifier from a key or a JWKS URL; undefined when neither is given. `exp` is
 * required: a token without it would be a credential for ever.
 */
export function jwtVerifier(options: JwtVerifierOptions): JwtVerifier | undefined {
  let key: KeyObject | JWTVerifyGetKey;
  if (options.jwksUrl) {
    key = createRemoteJWKSet(new URL(options.jwksUrl), options.jwksCooldownMs === undefined ? {} : { cooldownDuration: options.jwksCooldownMs });
  } else if (options.publicKey) {
    key = publicKeyFrom(options.publicKey);
  } else {
    return undefined;
  }
  const checks = {
    audience: options.audience,
    issuer: options.issuer,
    algorithms: options.algorithms,
    requiredClaims: ["exp"],
    clockTolerance: options.clockToleranceSeconds ?? 0,
  };
  const maxSubjectBytes = options.maxSubjectBytes ?? 255;
  return async (token) => {
    let sub: unknown;
    try {
      // (jwtVerify has one overload for a key and one for a key-getting function.)
      const verified = typeof key === "function" ? await jwtVerify(token, key, checks) : await jwtVerify(token, key, checks);
      sub = verified.payload.sub;
    } catch (err: unknown) {
      throw new ConnectError(err instanceof joseErrors.JWTExpired ? `${options.what} has expired` : `${options.what} is not valid`, Code.Unauthenticated);
    }
    // jose checks the signature and the claims it is asked to, not the type of `sub`.
    if (typeof sub !== "string" || sub === "") throw new ConnectError(`${options.what} has no subject (a non-empty string)`, Code.Unauthenticated);
    if (Buffer.byteLength(sub) > maxSubjectBytes) throw new ConnectError(`${options.what}'s subject is longer than ${maxSubjectBytes} bytes`, Code.Unauthenticated);
    return sub;
  };
}

/** A JWK, one key of a JWKS, or an SPKI PEM, as a public KeyObject (RSA, EC or Ed25519). */
function publicKeyFrom(text: string): KeyObject | JWTVerifyGetKey {
  const trimmed = text.trim();
  if (!trimmed.startsWith("{")) return createPublicKey(trimmed);
  const json = JSON.parse(trimmed) as JWK & { keys?: JWK[] };
  if (json.keys) return createLocalJWKSet({ keys: json.keys });
  return createPublicKey({ key: json as JsonWebKey, format: "jwk" });
}
