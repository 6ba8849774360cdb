import type { Redis } from "ioredis";
import type { Logger } from "pino";
import { createRedisClient, type RedisClientOptions } from "../redis/redis-client.js";
import { callRedis, RedisUnavailableError } from "../redis/redis-errors.js";
import type { EventInfo, QueueStore } from "../queue/queue-store.js";
import { ChangeOpCode } from "../queue/script-codes.js";
import { Presence } from "./presence.js";

type Op = typeof ChangeOpCode;
/** What moved in one script run; see `changed` in src/lua/includes/event.lua. */
export type ChangeOp = [Op["JOINED"], string] | [Op["LEFT"], number, string] | [Op["PROMOTED"], number] | [Op["SEAT"], string] | [Op["RESET"]] | [Op["SETTINGS"]] | [Op["DRAWN"], string] | [Op["ANNOUNCED"]];

export type HubMessage =
  /** An event's scripts changed it to `version`. */
  | { kind: "change"; version: number; ops: ChangeOp[] }
  /** Messages may have been missed (the subscription was re-established): re-read. */
  | { kind: "resync" }
  /** The event's closes_at has passed. */
  | { kind: "closed" }
  /** The server is stopping. */
  | { kind: "shutdown" };

type Listener = (message: HubMessage) => void;

interface Watched {
  listeners: Set<Listener>;
  subscribed: Promise<unknown>;
  info: Promise<EventInfo> | undefined;
  closeTimer: NodeJS.Timeout | undefined;
}

/**
 * One Redis subscription per process per watched event, fanned out in memory to
 * every watcher of that event: Redis work does not grow with the number of
 * watchers.
 */
export class ChangeHub {
  private readonly events = new Map<string, Watched>();
  private readonly byChannel = new Map<string, string>();
  private closed = false;
  private readonly closingController = new AbortController();
  private shardedMode: Promise<boolean> | undefined;
  /** Aborted when the server stops: long-lived streams end so clients reconnect. */
  readonly closing: AbortSignal = this.closingController.signal;
  /** Signs of presence of this process's callers, batched (walk-aways). */
  readonly presence: Presence;

  constructor(
    private readonly subscriber: Redis,
    private readonly store: QueueStore,
    private readonly log: Logger,
    private readonly timeoutMs: number,
  ) {
    this.presence = new Presence(store, log);
    subscriber.on("message", (channel: string, text: string) => this.onMessage(channel, text));
    subscriber.on("smessage", (channel: string, text: string) => this.onMessage(channel, text));
    // ioredis re-subscribes after a reconnect (on a cluster, a master's sharded
    // subscriber is made anew); whatever was published meanwhile is lost, so everyone re-reads.
    subscriber.on("ready", () => this.broadcast({ kind: "resync" }));
    subscriber.on("+subscriber", () => this.broadcast({ kind: "resync" }));
    subscriber.on("error", (err: Error) => log.debug({ err: err.message }, "change subscriber error"));
  }

  /**
   * Starts delivering the event's changes to `listener` once the subscription
   * is active (or rejects after the timeout). Returns the function that stops it.
   */
  async watch(eventId: string, listener: Listener): Promise<() => void> {
    if (this.closed) throw new Error("change hub is closed");
    let watched = this.events.get(eventId);
    if (!watched) {
      const channel = this.store.channel(eventId);
      this.byChannel.set(channel, eventId);
      watched = { listeners: new Set(), subscribed: this.subscribe(channel), info: undefined, closeTimer: undefined };
      this.events.set(eventId, watched);
      this.scheduleClose(eventId, watched);
    }
    watched.listeners.add(listener);
    const stop = (): void => this.unwatch(eventId, listener);
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

  /** Open watch streams in this process (for leak checks and metrics). */
  watcherCount(): number {
    let n = 0;
    for (const watched of this.events.values()) n += watched.listeners.size;
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
    for (const watched of this.events.values()) clearTimeout(watched.closeTimer);
    this.events.clear();
    this.subscriber.disconnect();
  }

  private unwatch(eventId: string, listener: Listener): void {
    const watched = this.events.get(eventId);
    if (!watched) return;
    watched.listeners.delete(listener);
    if (watched.listeners.size > 0) return;
    clearTimeout(watched.closeTimer);
    this.events.delete(eventId);
    const channel = this.store.channel(eventId);
    this.byChannel.delete(channel);
    this.sharded()
      .then((sharded) => (sharded ? this.subscriber.sunsubscribe(channel) : this.subscriber.unsubscribe(channel)))
      .catch(() => undefined);
  }

  /**
   * SSUBSCRIBE where Redis has sharded pub/sub (the scripts then SPUBLISH:
   * src/lua/includes/event.lua), else SUBSCRIBE. On a cluster a sharded
   * subscription is made on the master that owns the event, and only that
   * shard carries its messages.
   */
  private subscribe(channel: string): Promise<unknown> {
    return callRedis(async () => ((await this.sharded()) ? this.subscriber.ssubscribe(channel) : this.subscriber.subscribe(channel)));
  }

  /** Asked of Redis once (again after a failure). */
  private sharded(): Promise<boolean> {
    this.shardedMode ??= this.store.shardedPubSub().catch((err: unknown) => {
      this.shardedMode = undefined;
      throw err;
    });
    return this.shardedMode;
  }

  private onMessage(channel: string, text: string): void {
    const eventId = this.byChannel.get(channel);
    const watched = eventId === undefined ? undefined : this.events.get(eventId);
    if (!watched || eventId === undefined) return;
    let message: HubMessage;
    try {
      const parsed = JSON.parse(text) as { v: number; ops: ChangeOp[] };
      message = { kind: "change", version: parsed.v, ops: parsed.ops };
    } catch {
      message = { kind: "resync" };
    }
    if (message.kind === "change" && message.ops.some((op) => op[0] === ChangeOpCode.SETTINGS || op[0] === ChangeOpCode.RESET || op[0] === ChangeOpCode.DRAWN || op[0] === ChangeOpCode.ANNOUNCED)) {
      watched.info = undefined;
      if (message.ops.some((op) => op[0] === ChangeOpCode.RESET)) this.store.drawn.forget(eventId);
      this.scheduleClose(eventId, watched);
    }
    for (const listener of watched.listeners) listener(message);
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
          for (const listener of watched.listeners) listener({ kind: "closed" });
        }, delay);
        watched.closeTimer.unref();
      },
      (err: unknown) => this.log.debug({ err: String(err), event: eventId }, "could not read event for its close timer"),
    );
  }

  private broadcast(message: HubMessage): void {
    for (const watched of this.events.values()) for (const listener of watched.listeners) listener(message);
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new RedisUnavailableError("redis is unavailable", { cause: new Error(`no answer within ${ms} ms`) })), ms);
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

/** A hub on its own subscriber connection (a subscribed connection can run no other command). */
export async function connectChangeHub(options: RedisClientOptions, store: QueueStore, log: Logger): Promise<ChangeHub> {
  const subscriber = createRedisClient({ ...options, shardedSubscribers: true });
  const hub = new ChangeHub(subscriber, store, log, options.commandTimeoutMs);
  await subscriber.connect().catch((err: unknown) => log.warn({ err: String(err) }, "change subscriber not connected at start; retrying"));
  return hub;
}
