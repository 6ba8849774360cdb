import type { Redis } from "ioredis";
import { KeyObject } from "node:crypto";
import {
  calculateJwkThumbprint,
  errors as joseErrors,
  exportJWK,
  generateKeyPair,
  importJWK,
  importPKCS8,
  jwtVerify,
  type CryptoKey,
  type JWK,
} from "jose";
import { StateError, StateErrorCode } from "../queue/state-errors.js";
import { keepFirst } from "../redis/keep-first.js";
import { ed25519Signer, type Ed25519Signer } from "./ed25519.js";

/** The audience of every ticket: a ticket is good for nothing else. */
export const TICKET_AUDIENCE = "ticketqueue:ticket";

interface SigningKey {
  /** Synchronous, and several times cheaper than WebCrypto's (jose) asynchronous sign. */
  signer: Ed25519Signer;
  /** The JWT header, already base64url-encoded: the same for every ticket. */
  encodedHeader: string;
  publicKey: CryptoKey;
  publicJwk: JWK;
  kid: string;
}

export interface TicketsOptions {
  /** TICKET_KEY: an Ed25519 private key as a JWK (JSON) or PKCS#8 PEM. Unset: one is kept in Redis. */
  configuredKey: string | undefined;
  /** Redis key under which a generated key is shared by every worker and restart. */
  redisKey: string;
  /** How long a ticket stays valid. */
  ttlSeconds: number;
}

/**
 * Signed tickets: JWTs (EdDSA / Ed25519) that bind a user to one entry (its join
 * sequence) of one event. Cancel, Confirm and WatchStatus require one.
 */
export class Tickets {
  private key: Promise<SigningKey> | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly options: TicketsOptions,
  ) {}

  /**
   * A compact JWS (RFC 7515) signed with Ed25519; issued on every new Reserve, so
   * kept cheap. `entrySecret`: an entrant of a pre-queue's secret, carried as
   * `drw` so that the traveller (and only they) can recompute their draw value.
   */
  async issue(eventId: string, userId: string, seq: number, entrySecret = ""): Promise<string> {
    const key = await this.signingKey();
    const iat = Math.floor(Date.now() / 1000);
    const claims = { evt: eventId, seq, sub: userId, aud: TICKET_AUDIENCE, iat, exp: iat + this.options.ttlSeconds, ...(entrySecret === "" ? {} : { drw: entrySecret }) };
    const signingInput = `${key.encodedHeader}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}`;
    return `${signingInput}.${key.signer.sign(Buffer.from(signingInput)).toString("base64url")}`;
  }

  /**
   * The entry sequence the ticket is bound to. Missing, forged, malformed or
   * expired, or valid but for another user or event: a StateError saying which.
   */
  async verify(ticket: string, eventId: string, userId: string): Promise<number> {
    if (ticket === "") throw new StateError(StateErrorCode.TicketRequired, "a ticket is required: send the one Reserve returned");
    const key = await this.signingKey();
    let payload;
    try {
      ({ payload } = await jwtVerify(ticket, key.publicKey, { audience: TICKET_AUDIENCE, algorithms: ["EdDSA"], requiredClaims: ["exp"] }));
    } catch (err: unknown) {
      if (err instanceof joseErrors.JWTExpired) throw new StateError(StateErrorCode.TicketExpired, "the ticket has expired");
      throw new StateError(StateErrorCode.TicketInvalid, "the ticket is not valid");
    }
    if (payload.sub !== userId || payload["evt"] !== eventId) {
      throw new StateError(StateErrorCode.TicketMismatch, "the ticket is for another user or event");
    }
    const seq = payload["seq"];
    if (typeof seq !== "number" || !Number.isInteger(seq)) throw new StateError(StateErrorCode.TicketInvalid, "the ticket is not valid");
    return seq;
  }

  /** The library that signs tickets (logged at start). */
  async signingLibrary(): Promise<Ed25519Signer["library"]> {
    return (await this.signingKey()).signer.library;
  }

  /** The public key(s) as JWKs, for GetTicketKeys (/.well-known/jwks.json). */
  async publicKeys(): Promise<JWK[]> {
    const key = await this.signingKey();
    return [{ ...key.publicJwk, kid: key.kid, alg: "EdDSA", use: "sig" }];
  }

  private signingKey(): Promise<SigningKey> {
    // Loaded once; a failure (Redis down at start) is retried on the next call.
    this.key ??= this.loadKey().catch((err: unknown) => {
      this.key = undefined;
      throw err;
    });
    return this.key;
  }

  private async loadKey(): Promise<SigningKey> {
    const configured = this.options.configuredKey;
    if (configured !== undefined) return fromPrivate(await importPrivate(configured));
    const { privateKey } = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
    const candidate = JSON.stringify(await exportJWK(privateKey));
    // The first worker's key wins; everyone then uses what Redis holds.
    return fromPrivate(await importPrivate(await keepFirst(this.redis, this.options.redisKey, candidate)));
  }
}

async function importPrivate(text: string): Promise<CryptoKey> {
  const trimmed = text.trim();
  const key = trimmed.startsWith("{")
    ? await importJWK(JSON.parse(trimmed) as JWK, "EdDSA", { extractable: true })
    : await importPKCS8(trimmed, "EdDSA", { extractable: true });
  if (!(key instanceof Object) || !("type" in key) || key.type !== "private") throw new Error("TICKET_KEY must be an Ed25519 private key");
  return key;
}

async function fromPrivate(privateKey: CryptoKey): Promise<SigningKey> {
  const { kty, crv, x } = await exportJWK(privateKey);
  const publicJwk: JWK = { kty, crv, x };
  const publicKey = await importJWK(publicJwk, "EdDSA");
  if (!("type" in publicKey)) throw new Error("unexpected public key");
  const kid = await calculateJwkThumbprint(publicJwk);
  const encodedHeader = Buffer.from(JSON.stringify({ alg: "EdDSA", kid, typ: "JWT" })).toString("base64url");
  return { signer: ed25519Signer(KeyObject.from(privateKey)), encodedHeader, publicKey, publicJwk, kid };
}
