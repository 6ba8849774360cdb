import type { Logger } from "pino";
import type { QueueStore } from "./queue-store.js";

export interface HoldSweeper {
  stop(): void;
}

/**
 * Ends purchase holds that ran out, in every event, a few times a second: a seat
 * passes on within a second of its hold's end. Every worker runs one; the
 * script is atomic and idempotent, so no leader is needed. An event whose
 * pre-queue draw is due is drawn here too, chunk after chunk until done (every
 * worker's sweeper may take chunks: each is atomic and draws each entrant once).
 */
export function startHoldSweeper(store: QueueStore, log: Logger, intervalMs = 250): HoldSweeper {
  let running = false;
  const sweep = async (): Promise<void> => {
    if (running) return;
    running = true;
    try {
      // One SMEMBERS a tick: a new event's holds are swept from its first second.
      // All events at once: the scripts go out together, not one round trip per
      // train after another.
      await Promise.all(
        (await store.eventIds()).map(async (eventId) => {
          // One event's failure (e.g. the default event not created yet) must not stop the others.
          try {
            const { expired, promoted, drawDue } = await store.expireHolds(eventId);
            if (expired > 0) log.info({ event: eventId, expired, promoted: promoted.length }, "holds expired");
            if (drawDue) await draw(store, log, eventId);
          } catch (err: unknown) {
            log.debug({ err: String(err), event: eventId }, "hold sweep of an event failed; retrying");
          }
        }),
      );
    } catch (err: unknown) {
      log.debug({ err: String(err) }, "hold sweep failed; retrying");
    } finally {
      running = false;
    }
  };
  const timer = setInterval(() => void sweep(), intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}

/** Draws an event's pre-queue in short calls, one after another, until it is done (or waits for its beacon). */
async function draw(store: QueueStore, log: Logger, eventId: string): Promise<void> {
  const started = performance.now();
  let total = 0;
  for (;;) {
    const { drawn, done, promoted } = await store.draw(eventId);
    total += drawn;
    if (done) {
      log.info({ event: eventId, drawnHere: total, promoted: promoted.length, ms: Math.round(performance.now() - started) }, "pre-queue drawn");
      return;
    }
    if (drawn === 0) return;
  }
}
