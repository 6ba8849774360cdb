import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { Redis } from "ioredis";
import { createChallenge, extractParams } from "altcha-lib/v1";
import type { Payload } from "altcha-lib/v1/types";
import type { VerifiedSolution } from "../queue/queue-store.js";
import { StateError, StateErrorCode } from "../queue/state-errors.js";
import { keepFirst } from "../redis/keep-first.js";

/** How long a challenge stays good. */
export const CHALLENGE_TTL_MS = 120_000;

/** Longest pow_solution accepted (an ALTCHA payload is about 300 bytes). */
const MAX_SOLUTION_CHARS = 2048;

export interface Challenge {
  algorithm: string;
  challenge: string;
  maxNumber: number;
  salt: string;
  signature: string;
}

/**
 * Proof-of-work challenges (ALTCHA's SHA-256 challenges, altcha-lib): made with
 * the event's difficulty, bound to the event (and the user, when users are known)
 * through the signed salt, good for CHALLENGE_TTL_MS. Verifying one costs a
 * SHA-256 and an HMAC (`solves`). The HMAC key is generated once and kept in Redis for
 * every worker. Whether a solution was used already is the reserve script's to
 * say (its key is in the event's slot).
 */
export class Challenges {
  private hmacKey: Promise<string> | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly redisKey: string,
  ) {}

  async create(eventId: string, difficulty: number, userId: string | undefined): Promise<Challenge> {
    const params: Record<string, string> = { evt: eventId };
    if (userId !== undefined) params["sub"] = userId;
    const c = await createChallenge({ algorithm: "SHA-256", hmacKey: await this.key(), maxNumber: difficulty, expires: new Date(Date.now() + CHALLENGE_TTL_MS), params });
    return { algorithm: c.algorithm, challenge: c.challenge, maxNumber: c.maxnumber ?? difficulty, salt: c.salt, signature: c.signature };
  }

  /**
   * Checks a solution for `eventId` (and `userId`, when users are known): answers
   * the digest the reserve script marks as used, or throws CHALLENGE_INVALID or
   * CHALLENGE_EXPIRED.
   */
  async verify(solution: string, eventId: string, userId: string | undefined): Promise<VerifiedSolution> {
    const payload = parsePayload(solution);
    const params = extractParams(payload);
    const expires = Number(params["expires"]) * 1000;
    if (params["evt"] !== eventId || (userId !== undefined && params["sub"] !== userId)) {
      throw new StateError(StateErrorCode.ChallengeInvalid, "this challenge was made for another event or user: get one for this Reserve");
    }
    if (!Number.isFinite(expires) || !solves(payload, await this.key())) {
      throw new StateError(StateErrorCode.ChallengeInvalid, "pow_solution does not solve a challenge of this service");
    }
    const ttlMs = expires - Date.now();
    if (ttlMs <= 0) throw new StateError(StateErrorCode.ChallengeExpired, "the challenge expired: get a new one");
    return { digest: createHash("sha256").update(payload.challenge).digest("hex").slice(0, 32), ttlMs };
  }

  private key(): Promise<string> {
    // Loaded once; a failure (Redis down) is retried on the next call.
    this.hmacKey ??= keepFirst(this.redis, this.redisKey, randomBytes(32).toString("base64url")).catch((err: unknown) => {
      this.hmacKey = undefined;
      throw err;
    });
    return this.hmacKey;
  }
}

/**
 * ALTCHA's check of a SHA-256 solution (what altcha-lib's verifySolution does):
 * SHA-256(salt + number) is the challenge and the challenge carries our HMAC.
 * Done with node:crypto: altcha-lib's goes through WebCrypto and cost about 240 µs
 * a call here against about 6 µs (test/proof-of-work.test.ts checks they agree).
 */
export function solves(payload: Payload, hmacKey: string): boolean {
  // ALTCHA's salt ends with "&" (altcha-lib adds it when missing): a digit of the
  // number moved into the salt must not make another solution.
  const salt = payload.salt.endsWith("&") ? payload.salt : `${payload.salt}&`;
  const challenge = createHash("sha256").update(salt + String(payload.number)).digest();
  const signature = createHmac("sha256", hmacKey).update(payload.challenge).digest();
  return timingSafeEqual(challenge, Buffer.from(payload.challenge, "hex")) && timingSafeEqual(signature, Buffer.from(payload.signature, "hex"));
}

/** The ALTCHA payload: base64 of its JSON (what the widget submits) or the JSON itself, checked field by field. */
function parsePayload(text: string): Payload {
  const invalid = (): StateError => new StateError(StateErrorCode.ChallengeInvalid, "pow_solution is not an ALTCHA solution (base64 JSON with algorithm, challenge, number, salt, signature)");
  if (text.length > MAX_SOLUTION_CHARS) throw invalid();
  let value: unknown;
  try {
    value = JSON.parse(text.trimStart().startsWith("{") ? text : Buffer.from(text, "base64").toString("utf8"));
  } catch {
    throw invalid();
  }
  if (typeof value !== "object" || value === null) throw invalid();
  const p = value as Record<string, unknown>;
  if (p["algorithm"] !== "SHA-256") throw invalid();
  if (typeof p["challenge"] !== "string" || !/^[0-9a-f]{64}$/.test(p["challenge"])) throw invalid();
  if (typeof p["signature"] !== "string" || !/^[0-9a-f]{64}$/.test(p["signature"])) throw invalid();
  if (typeof p["salt"] !== "string" || p["salt"].length > 512) throw invalid();
  if (typeof p["number"] !== "number" || !Number.isSafeInteger(p["number"]) || p["number"] < 0) throw invalid();
  return { algorithm: "SHA-256", challenge: p["challenge"], number: p["number"], salt: p["salt"], signature: p["signature"] };
}
