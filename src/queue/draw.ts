import { createHash, randomBytes, randomFillSync } from "node:crypto";

/**
 * The pre-queue draw's published function, in TypeScript (the scripts compute
 * the same in Lua: src/lua/includes/draw.lua). Anyone can recompute it:
 *   commitment  = SHA-256(seed bytes), published when the pre-queue opens
 *   final seed  = SHA-1(seed hex ":" chain head hex ":" beacon), hex
 *   draw value  = first 13 hex digits (52 bits) of SHA-1(final seed hex ":" entry secret hex)
 * The line is ordered by draw value; a ticket of an entrant carries its entry secret (`drw`).
 */

/** A fresh secret seed (256 bits) and its commitment, both hex. */
export function newDrawSeed(): { seed: string; commitment: string } {
  const seed = randomBytes(32);
  return { seed: seed.toString("hex"), commitment: createHash("sha256").update(seed).digest("hex") };
}

// Every Reserve makes an entry secret (the script decides whether the event
// draws): taken from a pool filled 4 KiB at a time, each byte used once, rather
// than a randomBytes call (and its buffer) per Reserve.
const secretPool = Buffer.alloc(4096);
let secretPoolUsed = secretPool.length;

/** A fresh entry secret (128 bits, hex): only its entrant's ticket carries it. */
export function newEntrySecret(): string {
  if (secretPoolUsed === secretPool.length) {
    randomFillSync(secretPool);
    secretPoolUsed = 0;
  }
  secretPoolUsed += 16;
  return secretPool.toString("hex", secretPoolUsed - 16, secretPoolUsed);
}

export function commitmentOf(seedHex: string): string {
  return createHash("sha256").update(Buffer.from(seedHex, "hex")).digest("hex");
}

export function finalSeedOf(seedHex: string, chainHex: string, beacon: string): string {
  return createHash("sha1").update(`${seedHex}:${chainHex}:${beacon}`).digest("hex");
}

export function drawValueOf(finalSeedHex: string, entrySecretHex: string): number {
  return Number.parseInt(createHash("sha1").update(`${finalSeedHex}:${entrySecretHex}`).digest("hex").slice(0, 13), 16);
}

/** A draw value as published: 13 hex digits. */
export function drawValueHex(value: number): string {
  return value.toString(16).padStart(13, "0");
}

/** 1-based place of `value` in the sorted values (the first of equal values), or 0 when absent. */
export function placeOf(sorted: ArrayLike<number>, value: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((sorted[mid] ?? 0) < value) lo = mid + 1;
    else hi = mid;
  }
  return sorted[lo] === value ? lo + 1 : 0;
}
