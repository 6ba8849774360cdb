import type { Logger } from "pino";
import { OpenCounts } from "../open-counts.js";
import type { QueueStore } from "../queue/queue-store.js";

/** Users per touch call: a short script. */
const CHUNK = 5000;
/** GetStatus callers remembered per event between flushes (beyond: seen again at their next call). */
const MAX_TOUCHED = 100_000;

/**
 * Signs of presence for walk-aways (src/lua/includes/presence.lua), batched per
 * process: every `flushMs` one touch call per event carries the users who
 * called GetStatus since, and, a few times per presence timeout, every user
 * with an open WatchStatus stream here. An open stream costs nothing per tick
 * but its place in one batched ZADD; nothing is written for an event that
 * drops nobody (the touch script answers so, and holders are not sent again
 * for 30 s).
 */
export class Presence {
  private readonly touched = new Map<string, Set<string>>();
  private readonly held = new Map<string, OpenCounts<string>>();
  /** When each event's holders are next sent. */
  private readonly nextRefresh = new Map<string, number>();
  private readonly timer: NodeJS.Timeout;
  private flushing = false;

  constructor(
    private readonly store: QueueStore,
    private readonly log: Logger,
    flushMs = 1000,
  ) {
    this.timer = setInterval(() => void this.flush(), flushMs);
    this.timer.unref();
  }

  /** The user showed they are there (a GetStatus). */
  touch(eventId: string, userId: string): void {
    let users = this.touched.get(eventId);
    if (!users) this.touched.set(eventId, (users = new Set()));
    if (users.size < MAX_TOUCHED) users.add(userId);
  }

  /** The user has a stream open here: present until `release` (once per `hold`). */
  hold(eventId: string, userId: string): void {
    this.touch(eventId, userId);
    let users = this.held.get(eventId);
    if (!users) this.held.set(eventId, (users = new OpenCounts()));
    users.add(userId);
  }

  /** A stream `hold` counted has ended (a method, not a closure per stream: every open watch would hold one). */
  release(eventId: string, userId: string): void {
    const users = this.held.get(eventId);
    if (!users) return;
    users.remove(userId);
    if (users.size === 0) this.held.delete(eventId);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Sends what was seen; exported for tests that cannot wait for the timer. */
  async flush(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      const now = Date.now();
      for (const eventId of new Set([...this.touched.keys(), ...this.held.keys()])) {
        const users = this.touched.get(eventId) ?? new Set<string>();
        this.touched.delete(eventId);
        const holders = this.held.get(eventId);
        const refresh = holders !== undefined && now >= (this.nextRefresh.get(eventId) ?? 0);
        if (refresh) for (const user of holders.keys()) users.add(user);
        if (users.size === 0) continue;
        try {
          let timeoutMs = 0;
          const all = [...users];
          for (let i = 0; i < all.length; i += CHUNK) {
            timeoutMs = await this.store.touch(eventId, all.slice(i, i + CHUNK));
            if (timeoutMs === 0) break;
          }
          // Holders are sent three times per timeout; not again for 30 s where nobody is dropped.
          if (refresh) this.nextRefresh.set(eventId, now + (timeoutMs === 0 ? 30_000 : Math.min(30_000, Math.max(1000, timeoutMs / 3))));
        } catch (err: unknown) {
          this.log.debug({ err: String(err), event: eventId }, "presence touch failed; sent again next time");
        }
      }
      for (const eventId of this.nextRefresh.keys()) if (!this.held.has(eventId)) this.nextRefresh.delete(eventId);
    } finally {
      this.flushing = false;
    }
  }
}
