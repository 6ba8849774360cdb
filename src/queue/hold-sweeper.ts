import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import type { QueueStore } from "./queue-store.js";

export interface HoldSweeper {
  /** Its id in the events' leases (meta's `sweeper`). */
  readonly id: string;
  /** Stops sweeping and lets go of the events it holds (after a sweep in flight); the same promise every call. */
  stop(): Promise<void>;
}

/** How long a sweeper holds an event's sweep (past it, with the sweeper gone, another takes it): eight of its sweeps. */
const LEASE_SWEEPS = 8;

/**
 * Ends purchase holds that ran out, in every event, a few times a second: a seat
 * passes on within a second of its hold's end. Every worker runs one, and one
 * at a time sweeps a given event (expire-holds-14.lua's lease): the first to
 * come sweeps it every interval, the others only ask again when the lease
 * would run out, so 100 workers do not run 100 sweeps of each train four
 * times a second. A sweeper that stops lets go of its events, and another
 * takes them at its next sweep; one that dies, within the lease (2 s by
 * default). An event whose pre-queue draw is due is drawn here too, chunk
 * after chunk until done.
 */
export function startHoldSweeper(store: QueueStore, log: Logger, intervalMs = 250): HoldSweeper {
  const sweeper = { id: randomUUID(), leaseMs: intervalMs * LEASE_SWEEPS };
  /** Events another sweeper holds: when to ask again (performance.now()). */
  let askAgainAt = new Map<string, number>();
  /** Events this one swept at its last sweep: the leases it holds. */
  let held = new Set<string>();
  const sweep = async (): Promise<void> => {
    try {
      // One SMEMBERS a tick: a new event's holds are swept from its first second.
      // All events at once: the scripts go out together, not one round trip per
      // train after another.
      const eventIds = await store.eventIds();
      const now = performance.now();
      const waits = new Map<string, number>();
      const swept = new Set<string>();
      await Promise.all(
        eventIds.map(async (eventId) => {
          const at = askAgainAt.get(eventId);
          if (at !== undefined && at > now) return void waits.set(eventId, at);
          // One event's failure (e.g. the default event not created yet) must not stop the others.
          try {
            const { expired, promoted, drawDue, sweptElsewhereMs } = await store.expireHolds(eventId, undefined, sweeper);
            if (sweptElsewhereMs > 0) return void waits.set(eventId, performance.now() + sweptElsewhereMs);
            swept.add(eventId);
            if (expired > 0) log.info({ event: eventId, expired, promoted: promoted.length }, "holds expired");
            if (drawDue) await draw(store, log, eventId);
          } catch (err: unknown) {
            log.debug({ err: String(err), event: eventId }, "hold sweep of an event failed; retrying");
          }
        }),
      );
      // Rebuilt each tick: events deleted since leave no entry behind.
      askAgainAt = waits;
      held = swept;
    } catch (err: unknown) {
      log.debug({ err: String(err) }, "hold sweep failed; retrying");
    }
  };
  /** The sweep in flight: a tick while one runs is skipped. */
  let current: Promise<void> | undefined;
  const timer = setInterval(() => {
    current ??= sweep().finally(() => (current = undefined));
  }, intervalMs);
  timer.unref();
  let stopped: Promise<void> | undefined;
  const stop = async (): Promise<void> => {
    clearInterval(timer);
    // A sweep in flight could take a lease again after the release; a long draw is not waited out.
    await Promise.race([current, new Promise((resolve) => setTimeout(resolve, 1000).unref())]);
    // Best effort: a lease not let go (Redis away) runs out by itself.
    await Promise.all([...held].map((eventId) => store.releaseSweep(eventId, sweeper.id).catch(() => false)));
  };
  return { id: sweeper.id, stop: () => (stopped ??= stop()) };
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
