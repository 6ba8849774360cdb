import type { Redis } from "ioredis";
import type { Logger } from "pino";
import { createRedisClient, type RedisClientOptions } from "../redis/redis-client.js";
import { callRedis, RedisUnavailableError } from "../redis/redis-errors.js";
import { lateTimeout } from "../redis/late-timeout.js";
import type { EventInfo, QueueStore } from "../queue/queue-store.js";
import { ChangeOpCode } from "../queue/script-codes.js";
import { Presence } from "./presence.js";

type Op = typeof ChangeOpCode;
/** What moved in one script run; see `changed` in src/lua/includes/event.lua. */
export type ChangeOp = [Op["JOINED"], string] | [Op["LEFT"], number, string] | [Op["PROMOTED"], number] | [Op["SEAT"], string] | [Op["RESET"]] | [Op["SETTINGS"]] | [Op["DRAWN"], string] | [Op["ANNOUNCED"]];

export type HubMessage =
  /**
   * An event's scripts changed it to `version`. Every version from `since` to
   * `version` reached this process, in order; those a listener was not given
   * touched only other users' own entries (see `watch`), so a listener that knows
   * the event as of `since - 1` or later missed nothing it needs.
   */
  | { kind: "change"; version: number; since: number; ops: ChangeOp[] }
  /** Messages may have been missed (the subscription was re-established): re-read. */
  | { kind: "resync" }
  /** The event's closes_at has passed. */
  | { kind: "closed" }
  /** The server is stopping. */
  | { kind: "shutdown" };

type Listener = (message: HubMessage) => void;

/** A user's listeners: one (nearly always: a Set costs about 200 bytes per open watch), or several (one user's tabs). */
type Mine = Listener | Set<Listener>;

interface Watched {
  /** By the user whose entry they follow. */
  listeners: Map<string, Mine>;
  /** The last version of an unbroken run of messages told, and where that run began (undefined: none yet). */
  last: number | undefined;
  since: number;
  subscribed: Promise<unknown>;
  info: Promise<EventInfo> | undefined;
  closeTimer: NodeJS.Timeout | undefined;
  /** Messages that came within `tellEveryMs` of a change told to everyone: told together when it ends. */
  held: Received[] | undefined;
  holdTimer: NodeJS.Timeout | undefined;
}

/** A message from the event's channel: a change as the scripts publish it, or anything else (its watchers re-read). */
type Received = { v: number; ops: ChangeOp[] } | "unreadable";

/** Held messages are told early at this many: half what a read watcher keeps of its unread changes (MAX_INBOX). */
const MAX_HELD = 128;


/**
 * One Redis subscription per process per watched event, fanned out in memory to
 * the watchers of that event: Redis work does not grow with the number of
 * watchers. A change that only touches some users' own entries (a join at the
 * back, a seat taken) goes to those users' watchers alone: at the opening every
 * join would otherwise wake every watcher (thousands of joins times thousands of
 * watchers kept a process busy for a minute: npm run bench:burst).
 */
export class ChangeHub {
  private readonly events = new Map<string, Watched>();
  private readonly byChannel = new Map<string, string>();
  private closed = false;
  private readonly closingController = new AbortController();
  /** Aborted when the server stops: long-lived streams end so clients reconnect. */
  readonly closing: AbortSignal = this.closingController.signal;
  /** Signs of presence of this process's callers, batched (walk-aways). */
  readonly presence: Presence;

  constructor(
    private readonly subscriber: Redis,
    private readonly store: QueueStore,
    private readonly log: Logger,
    private readonly timeoutMs: number,
    /**
     * WATCH_UPDATE_MS. Changes that may move every watcher of an event (someone
     * ahead left, seats were given) are told at once, then at most once per this:
     * those that come meanwhile are told together at its end, each watcher applying
     * them in one update. Without it every cancel wrote to every watcher (2,000
     * watchers held sequential cancels to 8 a second, against 169 with it:
     * node dist/bench/cancel-storm.js 2000 200).
     * 0: each at once.
     */
    private readonly tellEveryMs: number,
  ) {
    this.presence = new Presence(store, log);
    subscriber.on("message", (channel: string, text: string) => this.onMessage(channel, text));
    subscriber.on("smessage", (channel: string, text: string) => this.onMessage(channel, text));
    // ioredis re-subscribes after a reconnect; whatever was published meanwhile is lost, so everyone re-reads.
    subscriber.on("ready", () => this.broadcast({ kind: "resync" }));
    // On a cluster, after a master's sharded subscriber was made anew (a failover):
    // once the subscriptions are active again, not when the subscriber is made.
    subscriber.on("subscribersReady", () => void this.resubscribeSharded().then(() => this.broadcast({ kind: "resync" })));
    subscriber.on("error", (err: Error) => log.debug({ err: err.message }, "change subscriber error"));
  }

  /**
   * Starts delivering the event's changes to `listener` once the subscription
   * is active (or rejects after the timeout). Returns the function that stops
   * it, which `unwatch` does too.
   */
  async watch(eventId: string, userId: string, listener: Listener): Promise<() => void> {
    if (this.closed) throw new Error("change hub is closed");
    let watched = this.events.get(eventId);
    if (!watched) {
      const channel = this.store.channel(eventId);
      this.byChannel.set(channel, eventId);
      watched = { listeners: new Map(), last: undefined, since: 0, subscribed: this.subscribe(channel), info: undefined, closeTimer: undefined, held: undefined, holdTimer: undefined };
      this.events.set(eventId, watched);
      this.scheduleClose(eventId, watched);
    }
    const mine = watched.listeners.get(userId);
    if (!mine) watched.listeners.set(userId, listener);
    else if (mine instanceof Set) mine.add(listener);
    else watched.listeners.set(userId, new Set([mine, listener]));
    const stop = (): void => this.unwatch(eventId, userId, listener);
    const subscribed = watched.subscribed;
    try {
      await withTimeout(subscribed, this.timeoutMs);
    } catch (err: unknown) {
      stop();
      // The next watcher subscribes afresh instead of inheriting this failure.
      if (this.events.get(eventId) === watched && watched.subscribed === subscribed) watched.subscribed = this.subscribe(this.store.channel(eventId));
      throw err;
    }
    return stop;
  }

  /**
   * The versions of the event this process saw in one unbroken run (since..last),
   * every one delivered to the listeners it concerned; undefined: none yet.
   */
  seen(eventId: string): { since: number; last: number } | undefined {
    const watched = this.events.get(eventId);
    return watched?.last === undefined ? undefined : { since: watched.since, last: watched.last };
  }

  /** Open watch streams in this process (for leak checks and metrics). */
  watcherCount(): number {
    let n = 0;
    for (const watched of this.events.values()) for (const mine of watched.listeners.values()) n += mine instanceof Set ? mine.size : 1;
    return n;
  }

  /** The event's settings and counts, read once per change of settings. */
  eventInfo(eventId: string): Promise<EventInfo> {
    const watched = this.events.get(eventId);
    if (!watched) return this.store.getEvent(eventId);
    watched.info ??= this.store.getEvent(eventId).catch((err: unknown) => {
      watched.info = undefined;
      throw err;
    });
    return watched.info;
  }

  /** Ends every watch: each watcher gets `shutdown`. */
  async close(): Promise<void> {
    this.closed = true;
    this.presence.stop();
    this.closingController.abort();
    this.broadcast({ kind: "shutdown" });
    for (const watched of this.events.values()) {
      clearTimeout(watched.closeTimer);
      clearTimeout(watched.holdTimer);
    }
    this.events.clear();
    this.subscriber.disconnect();
  }

  /** Stops delivering to `listener` (as the function `watch` returned does). */
  unwatch(eventId: string, userId: string, listener: Listener): void {
    const watched = this.events.get(eventId);
    const mine = watched?.listeners.get(userId);
    if (!watched || !mine) return;
    if (mine === listener) watched.listeners.delete(userId);
    else if (mine instanceof Set) {
      mine.delete(listener);
      if (mine.size === 0) watched.listeners.delete(userId);
    }
    if (watched.listeners.size > 0) return;
    clearTimeout(watched.closeTimer);
    clearTimeout(watched.holdTimer);
    this.events.delete(eventId);
    const channel = this.store.channel(eventId);
    this.byChannel.delete(channel);
    this.subscriber.unsubscribe(channel).catch(() => undefined);
    this.subscriber.sunsubscribe(channel).catch(() => undefined);
  }

  /**
   * Both kinds of subscription: each script SPUBLISHes where its master has
   * sharded pub/sub (Redis 7.0+) and PUBLISHes where it does not
   * (src/lua/includes/event.lua), so a master of another version (a rolling
   * upgrade, a Redis replaced under the service) is heard too. A message comes by
   * one of them only; a Redis without SSUBSCRIBE refuses it as unknown. On a
   * cluster the sharded subscription is made on the master that owns the event,
   * and only that shard carries its messages.
   */
  private subscribe(channel: string): Promise<unknown> {
    const subscribed = callRedis(() => Promise.all([this.subscriber.subscribe(channel), this.subscriber.ssubscribe(channel).catch(unlessUnknownCommand)]));
    // Kept for watchers to come, which may never come (the one that made it anew gave up):
    // its failure is theirs to see, not an unhandled rejection.
    subscribed.catch(() => undefined);
    return subscribed;
  }

  /** SSUBSCRIBE again to every watched channel and wait for the answers (idempotent). */
  private async resubscribeSharded(): Promise<void> {
    await Promise.all([...this.byChannel.keys()].map((channel) => this.subscriber.ssubscribe(channel).catch((err: unknown) => this.log.debug({ err: String(err), channel }, "sharded re-subscription failed"))));
  }

  private onMessage(channel: string, text: string): void {
    const eventId = this.byChannel.get(channel);
    const watched = eventId === undefined ? undefined : this.events.get(eventId);
    if (!watched || eventId === undefined) return;
    // Anything else on the channel (anyone with access to Redis may publish there) makes watchers re-read, never throws.
    let received: Received = "unreadable";
    try {
      const parsed: unknown = JSON.parse(text);
      if (isChange(parsed)) received = parsed;
    } catch {
      // not JSON: re-read
    }
    // The event's cached settings go as the message comes, held or not: a watch that opens
    // (or re-reads) meanwhile reads Redis, which has the change already, and must read them anew too.
    if (received !== "unreadable" && received.ops.some((op) => op[0] === ChangeOpCode.SETTINGS || op[0] === ChangeOpCode.RESET || op[0] === ChangeOpCode.DRAWN || op[0] === ChangeOpCode.ANNOUNCED)) {
      if (received.ops.some((op) => op[0] === ChangeOpCode.RESET)) this.store.drawn.forget(eventId);
      this.rereadEvent(eventId, watched);
    }
    if (watched.held) {
      watched.held.push(received);
      // Told now rather than past what a read watcher keeps of its unread changes (its inbox: 256), where it would re-read Redis instead.
      if (watched.held.length >= MAX_HELD) this.tellHeld(eventId, watched);
      return;
    }
    if (this.tell(eventId, watched, received) && this.tellEveryMs > 0) this.hold(eventId, watched);
  }

  /** Holds the event's messages for `tellEveryMs`; then tells them. */
  private hold(eventId: string, watched: Watched): void {
    watched.held = [];
    watched.holdTimer = setTimeout(() => this.tellHeld(eventId, watched), this.tellEveryMs);
    watched.holdTimer.unref();
  }

  /** Tells what the event held, in order, and holds again if one of them went to everyone. */
  private tellHeld(eventId: string, watched: Watched): void {
    const held = this.release(watched);
    if (this.events.get(eventId) !== watched) return;
    let everyone = false;
    for (const received of held) everyone = this.tell(eventId, watched, received) || everyone;
    if (everyone) this.hold(eventId, watched);
  }

  /** Ends the hold: what it held, in order. */
  private release(watched: Watched): Received[] {
    clearTimeout(watched.holdTimer);
    const held = watched.held ?? [];
    watched.held = undefined;
    watched.holdTimer = undefined;
    return held;
  }

  /** Tells one message to the watchers it concerns, the run of versions kept as they are told; true when that was everyone. */
  private tell(eventId: string, watched: Watched, received: Received): boolean {
    let message: HubMessage = { kind: "resync" };
    if (received !== "unreadable") {
      // A run of versions goes on only with the next one; a later one starts a new run. An
      // earlier one (the same message by both subscriptions) leaves the run as it is: its
      // listeners have it already, or it was not theirs.
      if (watched.last === undefined || received.v > watched.last + 1) watched.since = received.v;
      if (watched.last === undefined || received.v > watched.last) watched.last = received.v;
      message = { kind: "change", version: received.v, since: watched.since, ops: received.ops };
    }
    if (message.kind === "resync") this.forgetRun(eventId, watched);
    const users = message.kind === "change" ? usersOnly(message.ops) : undefined;
    if (users) {
      for (const user of users) tell(watched.listeners.get(user), message);
      return false;
    }
    deliver(watched, message);
    return true;
  }

  /** Tells what the event holds, then `message` to all its watchers, at once (a resync, the close, the shutdown). */
  private tellAllNow(eventId: string, watched: Watched, message: HubMessage): void {
    for (const received of this.release(watched)) this.tell(eventId, watched, received);
    deliver(watched, message);
  }

  /** Tells the event's watchers when its closes_at passes (no script runs then). */
  private scheduleClose(eventId: string, watched: Watched): void {
    clearTimeout(watched.closeTimer);
    this.eventInfo(eventId).then(
      (info) => {
        if (info.closesAt <= 0 || info.closesAt <= info.now || this.events.get(eventId) !== watched) return;
        const delay = Math.min(info.closesAt - info.now, 2 ** 31 - 1);
        watched.closeTimer = setTimeout(() => {
          if (info.closesAt - info.now > delay) return this.scheduleClose(eventId, watched);
          this.tellAllNow(eventId, watched, { kind: "closed" });
        }, delay);
        watched.closeTimer.unref();
      },
      (err: unknown) => this.log.debug({ err: String(err), event: eventId }, "could not read event for its close timer"),
    );
  }

  private broadcast(message: HubMessage): void {
    for (const [eventId, watched] of this.events) {
      if (message.kind === "resync") {
        // (what was held came before the break: it is no help to anyone now)
        this.release(watched);
        this.forgetRun(eventId, watched);
        deliver(watched, message);
      } else this.tellAllNow(eventId, watched, message);
    }
  }

  /** Messages may have been lost: the next one starts a new run, and the event's settings are read again. */
  private forgetRun(eventId: string, watched: Watched): void {
    watched.last = undefined;
    this.rereadEvent(eventId, watched);
  }

  /** The event's settings may have changed: read them again, and its close timer with them. */
  private rereadEvent(eventId: string, watched: Watched): void {
    watched.info = undefined;
    this.scheduleClose(eventId, watched);
  }
}

function deliver(watched: Watched, message: HubMessage): void {
  for (const mine of watched.listeners.values()) tell(mine, message);
}

function tell(mine: Mine | undefined, message: HubMessage): void {
  if (typeof mine === "function") mine(message);
  else if (mine) for (const listener of mine) listener(message);
}

/**
 * The users a change concerns when it touches only their own entries (joins at
 * the back, seats): nobody else's state moves. Undefined: it may move anyone.
 */
function usersOnly(ops: ChangeOp[]): Set<string> | undefined {
  if (ops.length === 0) return undefined;
  const users = new Set<string>();
  for (const op of ops) {
    if (op[0] !== ChangeOpCode.JOINED && op[0] !== ChangeOpCode.SEAT) return undefined;
    users.add(op[1]);
  }
  return users;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = lateTimeout(() => reject(new RedisUnavailableError("redis is unavailable", { cause: new Error(`no answer within ${ms} ms`) })), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

const OP_CODES = new Set<unknown>(Object.values(ChangeOpCode));

/** A message as the scripts publish it: {"v": version, "ops": [[code, ...], ...]}, each code one of ChangeOpCode. */
function isChange(value: unknown): value is { v: number; ops: ChangeOp[] } {
  if (typeof value !== "object" || value === null) return false;
  const { v, ops } = value as { v?: unknown; ops?: unknown };
  return Number.isSafeInteger(v) && Array.isArray(ops) && ops.every((op) => Array.isArray(op) && OP_CODES.has(op[0]));
}

/** An "unknown command" refusal (a Redis before 7.0 has no SSUBSCRIBE) is no error here; anything else is. */
function unlessUnknownCommand(err: unknown): undefined {
  if (err instanceof Error && /unknown command/i.test(err.message)) return undefined;
  throw err;
}

/** A hub on its own subscriber connection (a subscribed connection can run no other command). */
export async function connectChangeHub(options: RedisClientOptions, store: QueueStore, log: Logger, tellEveryMs: number): Promise<ChangeHub> {
  const subscriber = createRedisClient({ ...options, shardedSubscribers: true });
  const hub = new ChangeHub(subscriber, store, log, options.commandTimeoutMs, tellEveryMs);
  await subscriber.connect().catch((err: unknown) => log.warn({ err: String(err) }, "change subscriber not connected at start; retrying"));
  return hub;
}
