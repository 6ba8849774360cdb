import { randomUUID } from "node:crypto";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { DurationSchema, timestampFromMs, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import {
  DrawState,
  ReservationStatus,
  SeatChange,
  type AnnouncementSchema,
  type EventSchema,
  type TicketQueueService,
  type WatchStatusResponseSchema,
} from "../../gen/ticketqueue/v1/ticket_queue_pb.js";
import { checkIdempotencyKey, checkShownText, checkUserId, eventIdOf } from "../queue/ids.js";
import { invalidField, StateError, StateErrorCode } from "../queue/state-errors.js";
import { MAX_TIME_MS, MIN_TIME_MS, type Announcement, type EntryState, type EventInfo, type QueueStore } from "../queue/queue-store.js";
import { drawValueHex } from "../queue/draw.js";
import { eventStateOf } from "../queue/event-state.js";
import { estimateWaitMs } from "../queue/wait-estimate.js";
import type { Challenges } from "../tickets/challenges.js";
import type { Tickets } from "../tickets/tickets.js";
import type { ChangeHub } from "../watch/change-hub.js";
import { watchEvent } from "../watch/event-watcher.js";
import { StatusWatch, type StatusUpdate } from "../watch/status-watcher.js";
import { deferred, passThrough } from "./stream-end.js";
import { signalsOf } from "./unary-calls.js";
import { WatchQuota } from "../watch/watch-quota.js";
import { actingFor } from "./user-identity.js";

const MAX_CAPACITY = 10_000_000;
const MAX_HOLD_SECONDS = 24 * 3600;
const MAX_WAITING = 1_000_000_000;
// A phone takes a few seconds per million SHA-256 tries.
const MAX_POW_DIFFICULTY = 10_000_000;
const DEFAULT_PAGE_SIZE = 500;
const MAX_PAGE_SIZE = 1000;
const MAX_ADMIT_PER_MINUTE = 10_000_000;
const MAX_PRESENCE_TIMEOUT_SECONDS = 24 * 3600;
const DEFAULT_DRAW_PAGE_SIZE = 1000;
const MAX_DRAW_PAGE_SIZE = 10_000;
const SEAT_CHANGES = { promoted: SeatChange.PROMOTED, expired: SeatChange.EXPIRED, cancelled: SeatChange.CANCELLED, abandoned: SeatChange.ABANDONED } as const;

/**
 * The RPCs. Thin by design: validate, verify the ticket where one is needed,
 * call one store method (one Lua script), shape the answer. Admin auth and error
 * mapping live in interceptors.
 */
export function ticketQueueService(store: QueueStore, tickets: Tickets, challenges: Challenges, hub: ChangeHub, options: { maxWatchesPerUser: number }): ServiceImpl<typeof TicketQueueService> {
  const watchQuota = new WatchQuota(options.maxWatchesPerUser);
  // What an open watch takes and gives back when it closes: its place in the quota and,
  // as an open stream keeps its user in line (walk-aways), its presence, batched with this
  // process's others. One object for every watch, not closures held by each.
  const watchHolds = {
    take(eventId: string, userId: string): void {
      watchQuota.take(`${eventId}\n${userId}`);
      hub.presence.hold(eventId, userId);
    },
    release(eventId: string, userId: string): void {
      watchQuota.give(`${eventId}\n${userId}`);
      hub.presence.release(eventId, userId);
    },
  };
  /**
   * The user and the entry a Cancel, Confirm or WatchStatus acts on: the ticket's
   * entry when one is sent, else (a signed-in user or a service) the user's current
   * entry (seq undefined).
   */
  const entryOf = async (ctx: HandlerContext, eventId: string, requested: string, ticket: string): Promise<{ userId: string; seq: number | undefined }> => {
    const acting = actingFor(ctx, requested, { ticketWillDo: true, operatorMay: false });
    checkUserId(acting.userId, acting.maxBytes);
    if (ticket === "" && acting.proven) return { userId: acting.userId, seq: undefined };
    return { userId: acting.userId, seq: await tickets.verify(ticket, eventId, acting.userId) };
  };
  return {
    async reserve(req, ctx) {
      const eventId = eventIdOf(req.eventId);
      const acting = actingFor(ctx, req.userId, { ticketWillDo: false, operatorMay: false });
      const userId = acting.userId === "" ? randomUUID() : acting.userId;
      checkUserId(userId, acting.maxBytes);
      checkIdempotencyKey(req.idempotencyKey);
      // Verified here (microseconds); whether it was used already, in the reserve script.
      const solution = req.powSolution === "" ? undefined : await challenges.verify(req.powSolution, eventId, acting.identified ? userId : undefined);
      const r = await store.reserve(eventId, userId, req.idempotencyKey, solution, req.partySize || 1);
      const live = r.status === ReservationStatus.RESERVED || r.status === ReservationStatus.QUEUED || r.status === ReservationStatus.PREQUEUED;
      return {
        userId,
        eventId,
        status: r.status,
        position: r.position,
        promoted: r.promoted,
        holdExpiresAt: timestamp(r.holdExpiresAt),
        alreadyReserved: r.alreadyKnown && r.status === ReservationStatus.RESERVED,
        alreadyInQueue: r.alreadyKnown && (r.status === ReservationStatus.QUEUED || r.status === ReservationStatus.PREQUEUED),
        ...drawFields(r),
        // Only the call that creates the entry learns its ticket; a repeat does when the caller
        // proved who it is, or repeats the key that made the entry, while the entry lives.
        ticket: live && (!r.alreadyKnown || acting.proven || r.sameKey) ? await tickets.issue(eventId, userId, r.seq, r.entrySecret) : "",
      };
    },

    async getStatus(req, ctx) {
      const eventId = eventIdOf(req.eventId);
      const { userId, maxBytes } = actingFor(ctx, req.userId, { ticketWillDo: false, operatorMay: true });
      checkUserId(userId, maxBytes);
      const r = await store.status(eventId, userId);
      if (r.status === ReservationStatus.QUEUED || r.status === ReservationStatus.PREQUEUED) hub.presence.touch(eventId, userId);
      const waitMs = r.status === ReservationStatus.QUEUED ? estimateWaitMs(r) : undefined;
      return {
        userId,
        eventId,
        status: r.status,
        position: r.position,
        promoted: r.promoted,
        holdExpiresAt: timestamp(r.holdExpiresAt),
        estimatedWait: waitMs === undefined ? undefined : duration(waitMs),
        ...drawFields(r),
      };
    },

    async cancel(req, ctx) {
      const eventId = eventIdOf(req.eventId);
      const { userId, seq } = await entryOf(ctx, eventId, req.userId, req.ticket);
      const r = await store.cancel(eventId, userId, seq);
      return { userId, eventId, status: r.status, alreadyCancelled: r.alreadyCancelled, promotedUserIds: r.promoted };
    },

    watchStatus(req, ctx) {
      // Opened when first read (or pushed): a refused ticket is the stream's error.
      return deferred(async () => {
        const eventId = eventIdOf(req.eventId);
        const { userId, seq } = await entryOf(ctx, eventId, req.userId, req.ticket);
        watchHolds.take(eventId, userId);
        return passThrough(new StatusWatch(store, hub, eventId, userId, seq, signalsOf(ctx), watchHolds), AS_WATCH_STATUS);
      });
    },

    async confirm(req, ctx) {
      const eventId = eventIdOf(req.eventId);
      const { userId, seq } = await entryOf(ctx, eventId, req.userId, req.ticket);
      const r = await store.confirm(eventId, userId, seq);
      return { userId, eventId, status: ReservationStatus.RESERVED, alreadyConfirmed: r.alreadyConfirmed };
    },

    async adminCancel(req) {
      const eventId = eventIdOf(req.eventId);
      checkUserId(req.userId);
      const r = await store.cancel(eventId, req.userId, undefined);
      return { userId: req.userId, eventId, status: r.status, alreadyCancelled: r.alreadyCancelled, promotedUserIds: r.promoted };
    },

    async listSeatHolders(req) {
      const eventId = eventIdOf(req.eventId);
      if (req.pageSize > MAX_PAGE_SIZE) throw new ConnectError(`page_size must be at most ${MAX_PAGE_SIZE}`, Code.InvalidArgument);
      // The token is Redis's HSCAN cursor: a number, and nothing else reaches Redis.
      if (req.pageToken !== "" && !(/^[1-9]\d{0,19}$/.test(req.pageToken) && BigInt(req.pageToken) < 2n ** 64n)) {
        throw invalidField("page_token", "is not one this service gave out");
      }
      const page = await store.seatHolders(eventId, req.pageToken || "0", req.pageSize || DEFAULT_PAGE_SIZE);
      return {
        seatHolders: page.rows.map((r) => ({ userId: r.userId, entry: BigInt(r.seq), holdExpiresAt: timestamp(r.holdExpiresAt), seats: r.seats })),
        nextPageToken: page.next === "0" ? "" : page.next,
      };
    },

    async processQueue(req) {
      const promoted = await store.processQueue(eventIdOf(req.eventId));
      return { promotedUserIds: promoted, promotedCount: promoted.length };
    },

    async reset(req) {
      const eventId = eventIdOf(req.eventId);
      if (req.eventId !== "" && req.confirm !== req.eventId) {
        throw new ConnectError(`resetting event ${eventId} removes every user: send confirm="${eventId}" to do it`, Code.FailedPrecondition);
      }
      return store.reset(eventId);
    },

    async createEvent(req) {
      if (req.eventId === "") throw new ConnectError("event_id is required", Code.InvalidArgument);
      const eventId = eventIdOf(req.eventId);
      const opensAt = ms(req.opensAt, "opens_at");
      const closesAt = ms(req.closesAt, "closes_at");
      const prequeueOpensAt = ms(req.prequeueOpensAt, "prequeue_opens_at");
      checkSettings({ capacity: req.capacity, holdSeconds: req.holdSeconds, name: req.name, opensAt, closesAt, maxWaiting: req.maxWaiting ?? 0, powDifficulty: req.powDifficulty, prequeueOpensAt, admitPerMinute: req.admitPerMinute, presenceTimeoutSeconds: req.presenceTimeoutSeconds, maxPartySize: req.maxPartySize || 1 });
      checkShownText("draw_beacon_source", req.drawBeaconSource, 200);
      if (prequeueOpensAt && !opensAt) throw new ConnectError("prequeue_opens_at needs an opens_at: the pre-queue is drawn then", Code.InvalidArgument);
      await store.createEvent(eventId, {
        name: req.name || eventId,
        capacity: req.capacity,
        holdSeconds: req.holdSeconds,
        opensAt,
        closesAt,
        maxWaiting: req.maxWaiting,
        powDifficulty: req.powDifficulty,
        prequeueOpensAt,
        drawBeaconSource: req.drawBeaconSource,
        admitPerMinute: req.admitPerMinute,
        presenceTimeoutSeconds: req.presenceTimeoutSeconds,
        maxPartySize: req.maxPartySize || 1,
      });
      return { event: toEvent(await store.getEvent(eventId)) };
    },

    async updateEvent(req) {
      const eventId = eventIdOf(req.eventId);
      if (req.opensAt && req.clearOpensAt) throw new ConnectError("opens_at and clear_opens_at contradict each other", Code.InvalidArgument);
      if (req.closesAt && req.clearClosesAt) throw new ConnectError("closes_at and clear_closes_at contradict each other", Code.InvalidArgument);
      const opensAt = req.clearOpensAt ? 0 : req.opensAt ? ms(req.opensAt, "opens_at") : undefined;
      const closesAt = req.clearClosesAt ? 0 : req.closesAt ? ms(req.closesAt, "closes_at") : undefined;
      const prequeueOpensAt = req.prequeueOpensAt ? ms(req.prequeueOpensAt, "prequeue_opens_at") : undefined;
      if (req.drawBeaconSource !== undefined) checkShownText("draw_beacon_source", req.drawBeaconSource, 200);
      if (req.drawBeacon !== undefined && !/^[0-9a-f]{2,256}$/.test(req.drawBeacon)) {
        throw invalidField("draw_beacon", "must be the announced round's value: 2 to 256 lowercase hex digits");
      }
      const before = await store.getEvent(eventId);
      checkSettings({
        capacity: req.capacity ?? before.capacity,
        holdSeconds: req.holdSeconds ?? before.holdSeconds,
        name: req.name ?? before.name,
        opensAt: opensAt ?? before.opensAt,
        closesAt: closesAt ?? before.closesAt,
        maxWaiting: req.maxWaiting ?? before.maxWaiting,
        powDifficulty: req.powDifficulty ?? before.powDifficulty,
        prequeueOpensAt: prequeueOpensAt ?? before.prequeueOpensAt,
        admitPerMinute: req.admitPerMinute ?? before.admitPerMinute,
        presenceTimeoutSeconds: req.presenceTimeoutSeconds ?? before.presenceTimeoutSeconds,
        maxPartySize: req.maxPartySize ?? before.maxPartySize,
      });
      const promoted = await store.updateEvent(eventId, {
        name: req.name,
        capacity: req.capacity,
        holdSeconds: req.holdSeconds,
        paused: req.paused,
        opensAt,
        closesAt,
        maxWaiting: req.maxWaiting,
        powDifficulty: req.powDifficulty,
        prequeueOpensAt,
        drawBeaconSource: req.drawBeaconSource,
        drawBeacon: req.drawBeacon,
        admitPerMinute: req.admitPerMinute,
        presenceTimeoutSeconds: req.presenceTimeoutSeconds,
        maxPartySize: req.maxPartySize,
      });
      return { event: toEvent(await store.getEvent(eventId)), promotedUserIds: promoted };
    },

    async *watchEvent(req, ctx) {
      const eventId = eventIdOf(req.eventId);
      // A feed cursor is a Redis stream id (ms-seq) this service gave out, or "0" for the oldest kept.
      const id = /^(\d{1,20})(?:-(\d{1,20}))?$/.exec(req.cursor);
      // (The largest id is refused too: nothing can come after it, and Redis refuses to read past it.)
      if (req.cursor !== "" && !(id && BigInt(id[1] ?? "0") < 2n ** 64n - 1n && BigInt(id[2] ?? "0") < 2n ** 64n)) {
        throw invalidField("cursor", "is not one this service gave out");
      }
      for await (const u of watchEvent(store, eventId, req.cursor, AbortSignal.any([ctx.signal, hub.closing]))) {
        yield {
          version: BigInt(u.info.version),
          event: toEvent(u.info),
          joinsPerSecond: u.joinsPerSecond,
          promotionsPerSecond: u.promotionsPerSecond,
          feed: u.feed.map((f) => ({ id: f.id, change: SEAT_CHANGES[f.kind], userId: f.userId, at: timestampFromMs(f.at) })),
          cursor: u.cursor,
        };
      }
      if (hub.closing.aborted) throw new ConnectError("the server is shutting down: reconnect", Code.Unavailable);
    },

    async getEvent(req) {
      return { event: toEvent(await store.getEvent(eventIdOf(req.eventId))) };
    },

    async listEvents() {
      const events = await Promise.all(
        (await store.eventIds()).map((id) =>
          store.getEvent(id).catch((err: unknown) => {
            // A registry entry whose event is gone (deleted by hand), or damaged, is left out: one bad event must not hide the others.
            if (err instanceof StateError && (err.code === StateErrorCode.NoSuchEvent || err.code === StateErrorCode.DamagedData)) return undefined;
            throw err;
          }),
        ),
      );
      return { events: events.flatMap((e) => (e ? [toEvent(e)] : [])) };
    },

    async getChallenge(req, ctx) {
      const eventId = eventIdOf(req.eventId);
      const acting = actingFor(ctx, req.userId, { ticketWillDo: false, operatorMay: false });
      if (acting.identified) checkUserId(acting.userId, acting.maxBytes);
      const { powDifficulty } = await store.getEvent(eventId);
      if (powDifficulty === 0) throw new ConnectError(`event ${eventId} asks for no proof of work: Reserve needs no pow_solution`, Code.FailedPrecondition);
      return challenges.create(eventId, powDifficulty, acting.identified ? acting.userId : undefined);
    },

    async announce(req) {
      const eventId = eventIdOf(req.eventId);
      // One line a phone shows in a banner.
      checkShownText("message_ko", req.messageKo, 280);
      checkShownText("message_en", req.messageEn, 280);
      await store.announce(eventId, req.messageKo, req.messageEn);
      return { event: toEvent(await store.getEvent(eventId)) };
    },

    async listDrawValues(req) {
      const eventId = eventIdOf(req.eventId);
      if (req.pageSize > MAX_DRAW_PAGE_SIZE) throw new ConnectError(`page_size must be at most ${MAX_DRAW_PAGE_SIZE}`, Code.InvalidArgument);
      // The token is the index of the next value: a number this service gave out.
      if (req.pageToken !== "" && !/^[1-9]\d{0,9}$/.test(req.pageToken)) throw invalidField("page_token", "is not one this service gave out");
      const from = Number(req.pageToken || "0");
      const size = req.pageSize || DEFAULT_DRAW_PAGE_SIZE;
      const { draw } = await store.getEvent(eventId);
      if (draw.state !== "done") return { values: [], total: 0, nextPageToken: "" };
      const all = await store.drawn.get(eventId, draw.finalSeed);
      const next = Math.min(all.length, from + size);
      return { values: Array.from(all.subarray(from, next), drawValueHex), total: all.length, nextPageToken: next < all.length ? String(next) : "" };
    },

    async getTicketKeys() {
      const keys = await tickets.publicKeys();
      return { keys: keys.map((k) => ({ kty: k.kty, crv: k.crv, x: k.x, kid: k.kid, alg: k.alg, use: k.use })) };
    },

    async health() {
      const latency = await store.ping();
      return { status: "ok", redisOk: true, redisLatencyMs: Math.round(latency * 1000) / 1000 };
    },
  };
}

/**
 * An open watch's updates as WatchStatus messages: one hooks object for every
 * stream (each open watch holds its layers' hooks), and no closure over the
 * request (its ticket) or its context.
 */
const AS_WATCH_STATUS = {
  map: (u: StatusUpdate): MessageInitShape<typeof WatchStatusResponseSchema> => ({
    version: BigInt(u.version),
    change: u.change,
    userId: u.userId,
    eventId: u.eventId,
    status: u.state.status,
    position: u.state.position,
    promoted: u.state.promoted,
    holdExpiresAt: timestamp(u.state.holdExpiresAt),
    estimatedWait: u.estimatedWaitMs === undefined ? undefined : duration(u.estimatedWaitMs),
    eventState: u.eventState,
    announcement: announcementOf(u.announcement),
    ...drawFields(u.state),
  }),
};

function checkSettings(s: {
  capacity: number;
  holdSeconds: number;
  name: string;
  opensAt: number;
  closesAt: number;
  maxWaiting: number;
  powDifficulty: number;
  prequeueOpensAt: number;
  admitPerMinute: number;
  presenceTimeoutSeconds: number;
  maxPartySize: number;
}): void {
  if (s.presenceTimeoutSeconds > MAX_PRESENCE_TIMEOUT_SECONDS) throw new ConnectError(`presence_timeout_seconds must be at most ${MAX_PRESENCE_TIMEOUT_SECONDS} (0: nobody is dropped)`, Code.InvalidArgument);
  if (s.admitPerMinute > MAX_ADMIT_PER_MINUTE) throw new ConnectError(`admit_per_minute must be at most ${MAX_ADMIT_PER_MINUTE} (0: unpaced)`, Code.InvalidArgument);
  // (Without an opens_at, e.g. just cleared, there is no pre-queue for it to open.)
  if (s.prequeueOpensAt && s.opensAt && s.prequeueOpensAt >= s.opensAt) throw new ConnectError("prequeue_opens_at must be before opens_at", Code.InvalidArgument);
  if (s.capacity < 1 || s.capacity > MAX_CAPACITY) throw new ConnectError(`capacity must be 1 to ${MAX_CAPACITY}`, Code.InvalidArgument);
  if (s.holdSeconds > MAX_HOLD_SECONDS) throw new ConnectError(`hold_seconds must be at most ${MAX_HOLD_SECONDS}`, Code.InvalidArgument);
  checkShownText("name", s.name, 200);
  if (s.opensAt && s.closesAt && s.closesAt <= s.opensAt) throw new ConnectError("closes_at must be after opens_at", Code.InvalidArgument);
  if (s.powDifficulty > MAX_POW_DIFFICULTY) throw new ConnectError(`pow_difficulty must be at most ${MAX_POW_DIFFICULTY} (0: none)`, Code.InvalidArgument);
  if (s.maxWaiting > MAX_WAITING) throw new ConnectError(`max_waiting must be at most ${MAX_WAITING} (0: no limit)`, Code.InvalidArgument);
  if (s.maxPartySize < 1 || s.maxPartySize > s.capacity) throw new ConnectError(`max_party_size must be 1 to the capacity (${s.capacity})`, Code.InvalidArgument);
}


function announcementOf(a: Announcement | undefined): MessageInitShape<typeof AnnouncementSchema> | undefined {
  return a && { messageKo: a.ko, messageEn: a.en, at: timestamp(a.at) };
}


/**
 * A request's Timestamp as epoch ms (0 when absent), checked before anything is
 * stored: seconds and nanos in range and the time within MIN_TIME_MS..MAX_TIME_MS.
 * (Times before 1970 are refused: 0 stands for "none" in storage, and no sale opens then.)
 */
function ms(t: Timestamp | undefined, field: string): number {
  if (!t) return 0;
  if (t.nanos < 0 || t.nanos > 999_999_999) throw invalidField(field, "nanos must be 0 to 999,999,999");
  const value = Number(t.seconds) * 1000 + Math.floor(t.nanos / 1_000_000);
  if (!Number.isSafeInteger(value) || value < MIN_TIME_MS || value > MAX_TIME_MS) {
    throw invalidField(field, "must be a time from 1970-01-01T00:00:00.001Z to 9999-12-31T23:59:59.999Z");
  }
  return value;
}

function timestamp(epochMs: number): Timestamp | undefined {
  return epochMs > 0 ? timestampFromMs(epochMs) : undefined;
}

function duration(waitMs: number) {
  return create(DurationSchema, { seconds: BigInt(Math.floor(waitMs / 1000)), nanos: (waitMs % 1000) * 1_000_000 });
}

/** What an entry is told beyond its status: when the draw is (PREQUEUED), its drawn place, its party's size. */
function drawFields(e: EntryState): { opensAt: Timestamp | undefined; drawnPlace: number; partySize: number } {
  return { opensAt: e.status === ReservationStatus.PREQUEUED ? timestamp(e.opensAt) : undefined, drawnPlace: e.drawnPlace, partySize: e.partySize };
}

const DRAW_STATES = { none: DrawState.UNSPECIFIED, open: DrawState.OPEN, drawing: DrawState.DRAWING, done: DrawState.DONE } as const;

function toEvent(e: EventInfo): MessageInitShape<typeof EventSchema> {
  const d = e.draw;
  return {
    prequeueOpensAt: timestamp(e.prequeueOpensAt),
    draw:
      d.state === "none"
        ? undefined
        : {
            state: DRAW_STATES[d.state],
            commitment: d.commitment,
            seed: d.seed,
            chainHead: d.chainHead,
            finalSeed: d.finalSeed,
            beaconSource: d.beaconSource,
            beacon: d.beacon,
            entrants: d.entrants,
            left: d.left,
            drawn: d.drawn,
            doneAt: timestamp(d.doneAt),
          },
    eventId: e.eventId,
    name: e.name,
    capacity: e.capacity,
    holdSeconds: e.holdSeconds,
    opensAt: timestamp(e.opensAt),
    closesAt: timestamp(e.closesAt),
    paused: e.paused,
    maxWaiting: e.maxWaiting,
    powDifficulty: e.powDifficulty,
    admitPerMinute: e.admitPerMinute,
    presenceTimeoutSeconds: e.presenceTimeoutSeconds,
    maxPartySize: e.maxPartySize,
    announcement: announcementOf(e.announcement),
    state: eventStateOf(e, e.now),
    counts: {
      reserved: e.seats,
      held: e.held,
      waiting: e.waiting,
      joinedTotal: e.joinedTotal,
      promotedTotal: e.promotedTotal,
      cancelledTotal: e.cancelledTotal,
      expiredTotal: e.expiredTotal,
      abandonedTotal: e.abandonedTotal,
    },
  };
}
