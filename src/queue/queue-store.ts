import { createHash } from "node:crypto";
import { ReplyError, type Redis } from "ioredis";
import { ReservationStatus } from "../../gen/ticketqueue/v1/ticket_queue_pb.js";
import type { DurabilityGate } from "../redis/durability.js";
import { callRedis } from "../redis/redis-errors.js";
import { DEFAULT_EVENT_ID } from "./ids.js";
import { auditKey, eventChannel, eventKeys, eventRegistryKey, rateLimitKey, refusedAuditKey, scriptKeys, solutionKey } from "./keys.js";
import { DrawStateCode, EntryCode, FeedKindCode } from "./script-codes.js";
import { drawValueOf, newDrawSeed, newEntrySecret, placeOf } from "./draw.js";
import { DrawnValues } from "./drawn-values.js";
import { scriptError } from "./script-errors.js";
import { StateError, StateErrorCode } from "./state-errors.js";
import { loadScripts, type ScriptRunner } from "./scripts.js";

/** A user's entry in an event, as the scripts report it. */
export interface EntryState {
  status: ReservationStatus;
  /** 1-based place in the queue when QUEUED, else 0. */
  position: number;
  /** Seated from the queue rather than at once. */
  promoted: boolean;
  /** Epoch ms when an unconfirmed hold runs out; 0 when none. */
  holdExpiresAt: number;
  /** The entry's join sequence (0 when there is none): tickets are bound to it. */
  seq: number;
  /** An entrant of a pre-queue, once drawn and while waiting: its place in the draw (1-based); else 0. */
  drawnPlace: number;
  /** An entrant of a pre-queue: its entry secret (hex), which only its ticket carries; else "". */
  entrySecret: string;
  /** The event's opening (epoch ms; 0 for none): a PREQUEUED user is told when the draw is. */
  opensAt: number;
  /** The seats the entry takes (its party's size; 1 once it ended). */
  partySize: number;
}

/** A proof-of-work solution the service verified: a hex digest of its challenge, and how long it stays good. */
export interface VerifiedSolution {
  digest: string;
  ttlMs: number;
}

export interface ReserveResult extends EntryState {
  /** The user's entry existed before the call (nothing changed). */
  alreadyKnown: boolean;
  /** That entry was made by a Reserve with the same idempotency key. */
  sameKey: boolean;
}

export interface StatusResult extends EntryState {
  /** The event's change counter when this was read. */
  version: number;
  /** Users promoted in the recent window, and the window's length, for wait estimates. */
  promotedInWindow: number;
  windowMs: number;
  /** The event's pace (0: unpaced): no wait is shorter than the pace makes it. */
  admitPerMinute: number;
}

export interface CancelResult {
  status: ReservationStatus;
  alreadyCancelled: boolean;
  promoted: string[];
}

/** Where an event's pre-queue draw is. */
export type DrawState = "none" | "open" | "drawing" | "done";

/** An event's pre-queue draw, as published (see draw.ts for the function). */
export interface DrawInfo {
  state: DrawState;
  /** SHA-256 of the secret seed (hex), from the moment the pre-queue opens. */
  commitment: string;
  /** Hex; "" until the draw is done. */
  seed: string;
  chainHead: string;
  finalSeed: string;
  beaconSource: string;
  beacon: string;
  entrants: number;
  left: number;
  drawn: number;
  /** Epoch ms; 0 until done. */
  doneAt: number;
}

/** The operator's message to everyone in an event's line. */
export interface Announcement {
  ko: string;
  en: string;
  /** Epoch ms when it was set. */
  at: number;
}

export interface EventSettings {
  name: string;
  capacity: number;
  holdSeconds: number;
  /** Epoch ms; 0 for none. */
  opensAt: number;
  closesAt: number;
  /** At most this many waiting (0: no limit); undefined: the store's defaultMaxWaiting. */
  maxWaiting?: number;
  /** Proof of work per Reserve: the largest number a challenge hides; 0 or undefined: none. */
  powDifficulty?: number;
  /** Epoch ms from which the pre-queue takes entrants; 0 or undefined: from the event's creation. */
  prequeueOpensAt?: number;
  /** A public randomness round the draw will wait for (its value set after the opening); "" or undefined: none. */
  drawBeaconSource?: string;
  /** Paced entry: at most this many admitted in any 60 seconds; 0 or undefined: unpaced. */
  admitPerMinute?: number;
  /** Walk-aways: a waiting user unseen this long (and a grace) leaves the line; 0 or undefined: off. */
  presenceTimeoutSeconds?: number;
  /** The largest party one Reserve may seat; undefined: 1. */
  maxPartySize?: number;
}

export interface EventInfo extends EventSettings {
  eventId: string;
  paused: boolean;
  seats: number;
  held: number;
  waiting: number;
  joinedTotal: number;
  promotedTotal: number;
  cancelledTotal: number;
  expiredTotal: number;
  /** Redis's clock when read (epoch ms). */
  now: number;
  /** The event's change counter. */
  version: number;
  /** The bound on the waiting in force: the event's own, or the default (0: none). */
  maxWaiting: number;
  /** Proof of work per Reserve (0: none). */
  powDifficulty: number;
  prequeueOpensAt: number;
  drawBeaconSource: string;
  admitPerMinute: number;
  presenceTimeoutSeconds: number;
  abandonedTotal: number;
  maxPartySize: number;
  /** The operator's message to everyone in line; undefined when none. */
  announcement: Announcement | undefined;
  draw: DrawInfo;
  /** Stored fields that held no valid value (read as 0). */
  invalid: string[];
}

/** A seat and its holder, as ListSeatHolders pages them. */
export interface SeatHolderRow {
  userId: string;
  seq: number;
  /** Epoch ms when the unconfirmed hold runs out; 0 when confirmed. */
  holdExpiresAt: number;
  /** The seats the holder's party takes. */
  seats: number;
}

/** One entry of an event's feed of seat changes, for the booking system. */
export interface FeedEntry {
  /** Redis stream id: the cursor to resume after this entry. */
  id: string;
  kind: "promoted" | "expired" | "cancelled" | "abandoned";
  userId: string;
  /** Epoch ms (from the stream id). */
  at: number;
}

export type EventChanges = Partial<EventSettings & { paused: boolean; drawBeacon: string }>;

export interface QueueStoreOptions {
  /** Key prefix, e.g. "tq". */
  prefix: string;
  /** DURABILITY=strict: waits until each write is durable before it is acknowledged. */
  durability?: DurabilityGate;
  /** Capacity the default event is created with; afterwards the stored value wins. */
  defaultCapacity: number;
  /** MAX_WAITING: the bound on the waiting of every event without its own (0: none). */
  defaultMaxWaiting?: number;
  /** Told when a read finds stored fields out of range (the log names them). */
  onInvalidStored?: (eventId: string, fields: string[]) => void;
}

/**
 * Typed access to the Lua scripts. Each method is one script call: one round
 * trip, atomic in Redis. No state is kept in Node.
 */
export class QueueStore {
  private readonly run: ScriptRunner;
  /** Each event's published draw, sorted, read once per process. */
  readonly drawn = new DrawnValues(this);

  constructor(
    private readonly redis: Redis,
    readonly options: QueueStoreOptions,
  ) {
    this.run = loadScripts(redis);
  }

  /**
   * `idempotencyKey`: the client's key for this Reserve; a repeat with the same key
   * finds the entry it made (`sameKey`), even once it has ended. Only 8-byte
   * digests reach Redis: of the user, and of the key with the event and user.
   */
  async reserve(eventId: string, userId: string, idempotencyKey = "", solution?: VerifiedSolution, partySize = 1): Promise<ReserveResult> {
    const key = idempotencyKey === "" ? "" : digest("key", eventId, userId, idempotencyKey);
    const solved = solutionKey(this.options.prefix, eventId, solution?.digest ?? "none");
    const args = [userId, this.defaultCapacity(eventId), this.options.defaultMaxWaiting ?? 0, digest("user", userId), key, solution ? "1" : "", solution?.ttlMs ?? 0, newEntrySecret(), partySize];
    const r = await this.call("reserve", eventId, args, [solved]);
    return { ...(await this.entry(eventId, r, 1, 8, 11)), alreadyKnown: r[6] === 1, sameKey: r[7] === 1 };
  }

  async status(eventId: string, userId: string): Promise<StatusResult> {
    const r = await this.call("status", eventId, [userId, this.defaultCapacity(eventId)]);
    return { ...(await this.entry(eventId, r, 1, 9, 13)), version: num(r[6]), promotedInWindow: num(r[7]), windowMs: num(r[8]), admitPerMinute: num(r[12]) };
  }

  /** `ticketSeq` undefined: an operator's cancel, or the user's own with their token (no ticket). */
  async cancel(eventId: string, userId: string, ticketSeq: number | undefined): Promise<CancelResult> {
    const r = await this.call("cancel", eventId, [userId, ticketSeq === undefined ? "" : ticketSeq]);
    return { status: statusOf(r[1]), alreadyCancelled: r[2] === 1, promoted: strings(r.slice(3)) };
  }

  /** `ticketSeq` undefined: the user's current entry (the caller proved who it is). */
  async confirm(eventId: string, userId: string, ticketSeq: number | undefined): Promise<{ alreadyConfirmed: boolean }> {
    const r = await this.call("confirm", eventId, [userId, ticketSeq === undefined ? "" : ticketSeq]);
    return { alreadyConfirmed: r[1] === 1 };
  }

  /**
   * Ends holds past their time and drops walk-aways (at most `max` each), and refills the seats.
   * With a `sweeper` (a worker's sweeper: its id and how long it holds the event's sweep), only
   * one sweeper at a time sweeps an event: the others get `sweptElsewhereMs`, the time left to
   * the one that holds it, and nothing is done.
   */
  async expireHolds(eventId: string, max = 1000, sweeper?: { id: string; leaseMs: number }): Promise<{ expired: number; promoted: string[]; drawDue: boolean; abandoned: number; sweptElsewhereMs: number }> {
    const r = await this.call("expireHolds", eventId, sweeper ? [max, sweeper.id, sweeper.leaseMs] : [max]);
    return { expired: num(r[1]), drawDue: r[2] === 1, abandoned: num(r[3]), sweptElsewhereMs: num(r[4]), promoted: strings(r.slice(5)) };
  }

  /** A stopping sweeper lets go of the event's sweep, if it holds it (expireHolds' lease). */
  async releaseSweep(eventId: string, sweeperId: string): Promise<boolean> {
    const r = await this.call("releaseSweep", eventId, [sweeperId]);
    return r[1] === 1;
  }

  /** Sets the event's announcement (both empty: clears it). */
  async announce(eventId: string, ko: string, en: string): Promise<void> {
    await this.call("announce", eventId, [ko, en]);
  }

  /** The users were seen (still there); answers the event's presence timeout in ms (0: it drops nobody, nothing written). */
  async touch(eventId: string, userIds: string[]): Promise<number> {
    const r = await this.call("touch", eventId, userIds);
    return num(r[1]);
  }

  /** Draws up to `max` entrants of the event's pre-queue, if its draw is due; `done` when this call finished it. */
  async draw(eventId: string, max = DRAW_CHUNK): Promise<{ drawn: number; done: boolean; promoted: string[] }> {
    const r = await this.call("draw", eventId, [max]);
    return { drawn: num(r[1]), done: r[2] === 1, promoted: strings(r.slice(3)) };
  }

  /** Records `from`.. of the event's drawlist (all 0 / "" until the draw is done), and the values the draw counted. */
  async drawlist(eventId: string, from: number, count: number): Promise<{ records: number; drawn: number; text: string }> {
    const r = await this.call("listDraw", eventId, [from, count]);
    return { records: num(r[1]), drawn: num(r[2]), text: text(r[3]) };
  }

  async processQueue(eventId: string): Promise<string[]> {
    const r = await this.call("processQueue", eventId, [this.defaultCapacity(eventId)]);
    return strings(r.slice(1));
  }

  async reset(eventId: string): Promise<{ clearedReserved: number; clearedWaiting: number }> {
    const { seed, commitment } = newDrawSeed();
    const r = await this.call("reset", eventId, [this.defaultCapacity(eventId), seed, commitment]);
    return { clearedReserved: num(r[1]), clearedWaiting: num(r[2]) };
  }

  async createEvent(eventId: string, s: EventSettings): Promise<void> {
    try {
      const { seed, commitment } = newDrawSeed();
      const args = [s.name, s.capacity, s.holdSeconds, s.opensAt, s.closesAt, s.maxWaiting ?? "", s.powDifficulty ?? 0, s.prequeueOpensAt ?? 0, s.drawBeaconSource ?? "", seed, commitment, s.admitPerMinute ?? 0, s.presenceTimeoutSeconds ?? 0, s.maxPartySize ?? 1];
      await this.call("createEvent", eventId, args);
    } finally {
      // The registry is an index for ListEvents, not state: adding it again is harmless.
      await callRedis(() => this.redis.sadd(eventRegistryKey(this.options.prefix), eventId));
    }
  }

  /** Applies the changes; answers the users a capacity raise promoted. */
  async updateEvent(eventId: string, changes: EventChanges): Promise<string[]> {
    const fields: Record<string, string | number | undefined> = {
      name: changes.name,
      capacity: changes.capacity,
      hold_seconds: changes.holdSeconds,
      paused: changes.paused === undefined ? undefined : changes.paused ? 1 : 0,
      opens_at: changes.opensAt,
      closes_at: changes.closesAt,
      max_waiting: changes.maxWaiting,
      pow_difficulty: changes.powDifficulty,
      prequeue_opens_at: changes.prequeueOpensAt,
      draw_beacon_source: changes.drawBeaconSource,
      draw_beacon: changes.drawBeacon,
      admit_per_minute: changes.admitPerMinute,
      presence_timeout_seconds: changes.presenceTimeoutSeconds,
      max_party_size: changes.maxPartySize,
    };
    const { seed, commitment } = newDrawSeed();
    const args = [seed, commitment, ...Object.entries(fields).flatMap(([k, v]) => (v === undefined ? [] : [k, v]))];
    const r = await this.call("updateEvent", eventId, args);
    return strings(r.slice(1));
  }

  /**
   * An event's settings and counts. A stored value out of its range (written by
   * hand, or before input was checked) reads as 0 and is named in `invalid`,
   * so that one bad field never makes the event unreadable.
   */
  async getEvent(eventId: string): Promise<EventInfo> {
    const r = await this.call("getEvent", eventId, [this.defaultCapacity(eventId)]);
    const invalid: string[] = [];
    const count = (i: number, field: string): number => inRange(r[i], 0, MAX_UINT32, field, invalid);
    const time = (i: number, field: string): number => (r[i] === 0 ? 0 : inRange(r[i], MIN_TIME_MS, MAX_TIME_MS, field, invalid));
    const info: EventInfo = {
      eventId,
      name: typeof r[1] === "string" ? r[1] : String(r[1]),
      capacity: count(2, "capacity"),
      holdSeconds: count(3, "hold_seconds"),
      opensAt: time(4, "opens_at"),
      closesAt: time(5, "closes_at"),
      paused: r[6] === 1,
      seats: count(7, "seats"),
      held: count(8, "held"),
      waiting: count(9, "waiting"),
      joinedTotal: count(10, "joined_total"),
      promotedTotal: count(11, "promoted_total"),
      cancelledTotal: count(12, "cancelled_total"),
      expiredTotal: count(13, "expired_total"),
      now: num(r[14]),
      version: inRange(r[15], 0, Number.MAX_SAFE_INTEGER, "version", invalid),
      maxWaiting: r[16] === "" ? (this.options.defaultMaxWaiting ?? 0) : count(16, "max_waiting"),
      powDifficulty: count(17, "pow_difficulty"),
      prequeueOpensAt: r[29] === 0 ? 0 : time(29, "prequeue_opens_at"),
      drawBeaconSource: text(r[23]),
      admitPerMinute: count(30, "admit_per_minute"),
      presenceTimeoutSeconds: count(31, "presence_timeout_seconds"),
      abandonedTotal: count(32, "abandoned_total"),
      maxPartySize: count(33, "max_party_size"),
      announcement: text(r[34]) === "" && text(r[35]) === "" ? undefined : { ko: text(r[34]), en: text(r[35]), at: num(r[36]) },
      draw: {
        state: drawStateOf(text(r[18])),
        commitment: text(r[19]),
        seed: text(r[20]),
        chainHead: text(r[21]),
        finalSeed: text(r[22]),
        beaconSource: text(r[23]),
        beacon: text(r[24]),
        entrants: count(25, "draw_entrants"),
        left: count(26, "draw_left"),
        drawn: count(27, "draw_drawn"),
        doneAt: r[28] === 0 ? 0 : time(28, "draw_done_at"),
      },
      invalid,
    };
    if (invalid.length > 0) this.options.onInvalidStored?.(eventId, invalid);
    return info;
  }

  /** One page of seat holders from HSCAN `cursor` ("0" first); `next` is "0" after the last page. */
  async seatHolders(eventId: string, cursor: string, count: number): Promise<{ rows: SeatHolderRow[]; next: string }> {
    const r = await this.call("listSeats", eventId, [cursor, count, this.defaultCapacity(eventId)]);
    const rows: SeatHolderRow[] = [];
    for (let i = 2; i + 3 < r.length; i += 4) {
      rows.push({ userId: strings([r[i]])[0] ?? "", seq: num(r[i + 1]), holdExpiresAt: num(r[i + 2]), seats: num(r[i + 3]) });
    }
    return { rows, next: String(r[1]) };
  }

  /** Feed entries after `cursor` ("0" for the oldest kept), at most `count`. */
  async feed(eventId: string, cursor: string, count: number): Promise<FeedEntry[]> {
    const rows = await callRedis(() => this.redis.xrange(this.feedKey(eventId), `(${cursor}`, "+", "COUNT", count));
    const kinds = { [FeedKindCode.PROMOTED]: "promoted", [FeedKindCode.EXPIRED]: "expired", [FeedKindCode.CANCELLED]: "cancelled", [FeedKindCode.ABANDONED]: "abandoned" } as const;
    return rows.map(([id, fields]) => {
      const values = new Map<string, string>();
      for (let i = 0; i + 1 < fields.length; i += 2) values.set(fields[i] ?? "", fields[i + 1] ?? "");
      const kind = kinds[(values.get("k") ?? FeedKindCode.PROMOTED) as keyof typeof kinds] ?? "promoted";
      return { id, kind, userId: values.get("u") ?? "", at: Number(id.split("-")[0]) };
    });
  }

  /** The cursor of the newest feed entry ("0" when the feed is empty). */
  async feedEnd(eventId: string): Promise<string> {
    const rows = await callRedis(() => this.redis.xrevrange(this.feedKey(eventId), "+", "-", "COUNT", 1));
    return rows[0]?.[0] ?? "0";
  }

  private feedKey(eventId: string): string {
    return eventKeys(this.options.prefix, eventId)[6] ?? "";
  }

  /** Every event id: the registry plus the default event. */
  async eventIds(): Promise<string[]> {
    const ids = await callRedis(() => this.redis.smembers(eventRegistryKey(this.options.prefix)));
    return [...new Set([DEFAULT_EVENT_ID, ...ids])].sort();
  }

  /**
   * One more call for `caller` under a limit of `limit` calls per `periodMs`?
   * When not, how long until there is room. `count` false only asks.
   */
  async allowCall(caller: string, limit: number, periodMs: number, count = true): Promise<{ allowed: boolean; retryAfterMs: number }> {
    const reply = await this.run("rateLimit", [rateLimitKey(this.options.prefix, caller)], [limit, periodMs, count ? 1 : 0]);
    if (!Array.isArray(reply)) throw new Error(`rate-limit script answered ${JSON.stringify(reply)}`);
    return { allowed: reply[0] === 1, retryAfterMs: num(reply[1]) };
  }

  /**
   * Appends an entry to the audit stream: admin actions to `<prefix>:audit`
   * (capped near 100,000 entries), calls refused for want of a credential to
   * `<prefix>:audit:refused` (capped near 10,000), so that a flood of refusals
   * never pushes an accepted action out.
   */
  async appendAudit(entry: Record<string, string>, refused: boolean): Promise<void> {
    const [key, cap] = refused ? [refusedAuditKey(this.options.prefix), 10_000] : [auditKey(this.options.prefix), 100_000];
    await callRedis(() => this.redis.xadd(key, "MAXLEN", "~", cap, "*", ...Object.entries(entry).flat()));
  }

  /** Round trip to Redis in milliseconds. */
  async ping(): Promise<number> {
    const started = performance.now();
    await callRedis(() => this.redis.ping());
    return performance.now() - started;
  }

  /** The pub/sub channel on which the event's scripts announce changes. */
  channel(eventId: string): string {
    return eventChannel(this.options.prefix, eventId);
  }

  /**
   * The EntryState at r[from..from+4], with r[draw..draw+2] (entry_secret,
   * opens_at_ms, final_seed: a drawn entrant's place is its value's in the
   * published draw, read once per process) and r[party] (party_size).
   */
  private async entry(eventId: string, r: unknown[], from: number, draw: number, party: number): Promise<EntryState> {
    const entrySecret = text(r[draw]);
    const finalSeed = text(r[draw + 2]);
    const drawnPlace = finalSeed === "" ? 0 : placeOf(await this.drawn.get(eventId, finalSeed), drawValueOf(finalSeed, entrySecret));
    return { ...entry(r, from), drawnPlace, entrySecret, opensAt: num(r[draw + 1]), partySize: num(r[party]) };
  }

  private defaultCapacity(eventId: string): number | string {
    return eventId === DEFAULT_EVENT_ID ? this.options.defaultCapacity : "";
  }

  /** Runs a script; a negative first element is a script error, mapped to an RPC error. */
  private async call(name: Parameters<ScriptRunner>[0], eventId: string, args: (string | number | Buffer)[], extraKeys: string[] = []): Promise<unknown[]> {
    const keys = [...scriptKeys(this.options.prefix, eventId), ...extraKeys];
    let reply: unknown;
    try {
      reply = await this.run(name, keys, args);
    } catch (err: unknown) {
      if (err instanceof ReplyError && err instanceof Error && err.message.startsWith("WRONGTYPE")) {
        throw new StateError(StateErrorCode.DamagedData, `event ${eventId}'s data in Redis is damaged (a key holds the wrong type): an operator must repair or reset it`);
      }
      throw err;
    }
    if (!Array.isArray(reply) || typeof reply[0] !== "number") {
      throw new Error(`script ${name} answered ${JSON.stringify(reply)}`);
    }
    if (reply[0] < 0) throw scriptError(reply[0], eventId, typeof reply[1] === "number" ? reply[1] : undefined);
    if (this.options.durability && !READ_ONLY_SCRIPTS.has(name) && !WROTE_NOTHING[name]?.(reply)) await this.options.durability.afterWrite(keys[0] ?? "");
    return reply;
  }
}

const READ_ONLY_SCRIPTS = new Set<Parameters<ScriptRunner>[0]>(["status", "getEvent", "listSeats", "listDraw"]);

/** Replies that say the script wrote nothing: no durability wait (WAIT, WAITAOF) for them. */
const WROTE_NOTHING: Partial<Record<Parameters<ScriptRunner>[0], (reply: unknown[]) => boolean>> = {
  // Another worker's sweeper holds the event's sweep: only the time left came back.
  expireHolds: (reply) => num(reply[4]) > 0,
  // The event drops nobody: its presence is not written.
  touch: (reply) => num(reply[1]) === 0,
};

/** Entrants one draw call handles: a call stays well under 50 ms (test/prequeue-draw-scale.test.ts). */
const DRAW_CHUNK = 2500;

/** The scripts' draw_state (DrawStateCode's values are the names), or "none". */
function drawStateOf(code: string): DrawState {
  return (Object.values(DrawStateCode) as string[]).includes(code) ? (code as DrawState) : "none";
}

function text(value: unknown): string {
  return typeof value === "string" ? value : value === undefined || value === null ? "" : String(value);
}

const MAX_UINT32 = 2 ** 32 - 1;
/**
 * Event times are stored as epoch ms, 0 for none: from just after the Unix epoch
 * to 9999-12-31T23:59:59.999Z, the last instant a google.protobuf.Timestamp holds.
 */
export const MIN_TIME_MS = 1;
export const MAX_TIME_MS = 253_402_300_799_999;

function inRange(value: unknown, min: number, max: number, field: string, invalid: string[]): number {
  if (typeof value === "number" && Number.isInteger(value) && value >= min && value <= max) return value;
  invalid.push(field);
  return 0;
}

/** The first 8 bytes of SHA-256 over the parts (NUL-separated), as 16 hex digits (reserve-15.lua stores the bytes): short, and nothing of the input readable. */
function digest(...parts: string[]): string {
  return createHash("sha256").update(parts.join("\0")).digest("hex").slice(0, 16);
}

function num(value: unknown): number {
  if (typeof value !== "number") throw new Error(`script answered ${JSON.stringify(value)} where a number belongs`);
  return value;
}

function strings(values: unknown[]): string[] {
  return values.map((v) => {
    if (typeof v !== "string") throw new Error(`script answered ${JSON.stringify(v)} where a user id belongs`);
    return v;
  });
}

const STATUS_OF_CODE = new Map<number, ReservationStatus>([
  [EntryCode.RESERVED, ReservationStatus.RESERVED],
  [EntryCode.QUEUED, ReservationStatus.QUEUED],
  [EntryCode.NOT_FOUND, ReservationStatus.NOT_FOUND],
  [EntryCode.CANCELLED, ReservationStatus.CANCELLED],
  [EntryCode.EXPIRED, ReservationStatus.EXPIRED],
  [EntryCode.PREQUEUED, ReservationStatus.PREQUEUED],
  [EntryCode.ABANDONED, ReservationStatus.ABANDONED],
]);

function statusOf(code: unknown): ReservationStatus {
  const status = STATUS_OF_CODE.get(num(code));
  if (status === undefined) throw new Error(`script answered unknown status ${String(code)}`);
  return status;
}

/** The EntryState at r[from..from+4]: status, position, promoted, hold_expires_ms, seq. */
function entry(r: unknown[], from: number): Omit<EntryState, "drawnPlace" | "entrySecret" | "opensAt" | "partySize"> {
  return {
    status: statusOf(r[from]),
    position: num(r[from + 1]),
    promoted: r[from + 2] === 1,
    holdExpiresAt: num(r[from + 3]),
    seq: num(r[from + 4]),
  };
}
