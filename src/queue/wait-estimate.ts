import { ADMIT_SPAN_MS } from "./script-codes.js";

/** Fewer promotions than this in the window say too little about the rate. */
const MIN_PROMOTIONS = 5;
/** A window shorter than this says too little about the rate. */
const MIN_WINDOW_MS = 20_000;

/**
 * Expected wait in ms for the user at `position`, from the promotions observed
 * in the recent window and the event's pace (nobody is admitted faster than it);
 * undefined when there is too little data (never a guess).
 */
export function estimateWaitMs(s: { position: number; promotedInWindow: number; windowMs: number; admitPerMinute: number }): number | undefined {
  if (s.position <= 0) return undefined;
  const observed = s.promotedInWindow < MIN_PROMOTIONS || s.windowMs < MIN_WINDOW_MS ? undefined : Math.round((s.position * s.windowMs) / s.promotedInWindow);
  const paced = s.admitPerMinute > 0 ? Math.round((s.position * ADMIT_SPAN_MS) / s.admitPerMinute) : undefined;
  if (observed === undefined || paced === undefined) return observed ?? paced;
  return Math.max(observed, paced);
}
