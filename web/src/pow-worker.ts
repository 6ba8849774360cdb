// Solves a proof-of-work challenge (ALTCHA, SHA-256) off the page's thread, with
// altcha-lib's solver, a slice of numbers at a time so that the page can show
// progress. Served from our own origin (no blob: worker, no wasm): the strict
// Content-Security-Policy stays.
import { solveChallenge } from "altcha-lib/v1";

export interface PowJob {
  challenge: string;
  salt: string;
  maxNumber: number;
}

/** { progress } while searching (0..1), then { number } or { number: null } when none fits. */
export type PowMessage = { progress: number } | { number: number | null };

const SLICE = 5000;

self.onmessage = async (event: MessageEvent<PowJob>) => {
  const { challenge, salt, maxNumber } = event.data;
  for (let start = 0; start <= maxNumber; start += SLICE) {
    const found = await solveChallenge(challenge, salt, "SHA-256", Math.min(maxNumber, start + SLICE - 1), start).promise;
    if (found) {
      self.postMessage({ number: found.number } satisfies PowMessage);
      return;
    }
    self.postMessage({ progress: Math.min(1, (start + SLICE) / (maxNumber + 1)) } satisfies PowMessage);
  }
  self.postMessage({ number: null } satisfies PowMessage);
};
