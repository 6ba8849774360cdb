import { createHash, timingSafeEqual } from "node:crypto";

/** Compares two secrets in constant time, whatever their lengths (as SHA-256 digests). */
export function sameSecret(presented: string, expected: string): boolean {
  return timingSafeEqual(digest(presented), digest(expected));
}

function digest(secret: string): Buffer {
  return createHash("sha256").update(secret, "utf8").digest();
}
