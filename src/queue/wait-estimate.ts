/** Fewer promotions than this in the window say too little about the rate. */
const MIN_PROMOTIONS = 5;
/** A window shorter than this says too little about the rate. */
const MIN_WINDOW_MS = 20_000;

/**
 * Expected wait in ms for the user at `position`, from the promotions observed
 * in the recent window; undefined when there is too little data (never a guess).
 */
export function estimateWaitMs(position: number, promotedInWindow: number, windowMs: number): number | undefined {
  if (position <= 0 || promotedInWindow < MIN_PROMOTIONS || windowMs < MIN_WINDOW_MS) return undefined;
  return Math.round((position * windowMs) / promotedInWindow);
}
