import { EventState, ReservationStatus, StatusChange } from "../../gen/ticketqueue/v1/ticket_queue_pb.js";
import { eventStateOf } from "../queue/event-state.js";
import { StateError, StateErrorCode } from "../queue/state-errors.js";
import type { Announcement, QueueStore, StatusResult } from "../queue/queue-store.js";
import { ChangeOpCode } from "../queue/script-codes.js";
import { estimateWaitMs } from "../queue/wait-estimate.js";
import { drawValueOf, placeOf } from "../queue/draw.js";
import type { ChangeHub, ChangeOp, HubMessage } from "./change-hub.js";

/** One message of a WatchStatus stream. */
export interface StatusUpdate {
  version: number;
  change: StatusChange;
  state: StatusResult;
  estimatedWaitMs: number | undefined;
  eventState: EventState;
  /** The operator's current message to the line. */
  announcement: Announcement | undefined;
}

/** Changes kept for a watcher that is not read; past it they collapse into one re-read. */
const MAX_INBOX = 256;

/** Warn this long (at most) before a hold runs out. */
const HOLD_WARNING_MS = 30_000;

const { PREQUEUED, QUEUED } = ReservationStatus;

const FINAL = new Set([ReservationStatus.CANCELLED, ReservationStatus.EXPIRED, ReservationStatus.ABANDONED, ReservationStatus.NOT_FOUND]);

/**
 * A user's state, then every change to it. The state is read from Redis once;
 * after that it is kept exact from the event's change feed (a position moves up
 * when someone ahead leaves or is promoted), and re-read from Redis only when
 * the user's own entry changed, a version was skipped, or the feed reconnected.
 */
export async function* watchStatus(
  store: QueueStore,
  hub: ChangeHub,
  eventId: string,
  userId: string,
  /** The ticket's entry; undefined: the user's current entry (the caller proved who it is). */
  ticketSeq: number | undefined,
  signal: AbortSignal,
): AsyncGenerator<StatusUpdate> {
  const inbox: (HubMessage | { kind: "holdExpiring" })[] = [];
  let wake: (() => void) | undefined;
  const deliver = (message: HubMessage | { kind: "holdExpiring" }): void => {
    if (inbox.length >= MAX_INBOX) {
      // Not read for a while (a client that does not read its stream): keep no
      // change at all, only a note to re-read Redis once it is read again.
      const kept = inbox.filter((m) => m.kind !== "change" && m.kind !== "resync");
      inbox.length = 0;
      inbox.push(...kept, { kind: "resync" });
    }
    inbox.push(message);
    wake?.();
  };
  const onAbort = (): void => wake?.();
  signal.addEventListener("abort", onAbort);
  // Subscribed before the first read: nothing that happens after the read is missed.
  const unwatch = await hub.watch(eventId, userId, deliver);
  let holdTimer: NodeJS.Timeout | undefined;
  try {
    let state = await store.status(eventId, userId);
    if (ticketSeq !== undefined && state.status !== ReservationStatus.NOT_FOUND && state.seq !== ticketSeq) {
      throw new StateError(StateErrorCode.TicketStale, "the ticket belongs to an earlier entry of this user");
    }
    let info = await hub.eventInfo(eventId);
    let eventState = eventStateOf(info, info.now);
    const update = (change: StatusChange): StatusUpdate => {
      // Versions this watcher was not given (other users' joins) still count: with nothing of its
      // own waiting, its state is the state as of the last version this process saw in a run from it.
      const seen = hub.seen(eventId);
      if (inbox.length === 0 && seen && seen.since <= state.version + 1 && seen.last > state.version) state = { ...state, version: seen.last };
      return { version: state.version, change, state, estimatedWaitMs: waitOf(state), eventState, announcement: info.announcement };
    };
    yield update(StatusChange.INITIAL);
    if (FINAL.has(state.status)) return;

    const armHoldWarning = (): void => {
      clearTimeout(holdTimer);
      holdTimer = undefined;
      if (state.status !== ReservationStatus.RESERVED || state.holdExpiresAt === 0) return;
      const left = state.holdExpiresAt - Date.now();
      holdTimer = setTimeout(() => deliver({ kind: "holdExpiring" }), Math.max(0, left - Math.min(HOLD_WARNING_MS, left / 2)));
    };
    armHoldWarning();

    while (!signal.aborted) {
      if (inbox.length === 0) await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
      let reread = false;
      let closed = false;
      let holdExpiring = false;
      let drawnPlace = 0;
      let announced = false;
      const before = state;
      let next = { ...state };
      for (const message of inbox.splice(0)) {
        switch (message.kind) {
          case "shutdown":
            throw new StateError(StateErrorCode.ShuttingDown, "the server is shutting down: reconnect");
          case "resync":
            reread = true;
            break;
          case "closed":
            closed = true;
            break;
          case "holdExpiring":
            holdExpiring = true;
            break;
          case "change":
            if (message.version <= next.version) break; // already part of the state
            if (message.since > next.version + 1 || reread) {
              reread = true; // a gap: only Redis knows what happened in it
              break;
            }
            const place = await placeIfDrawn(store, eventId, next, message.ops);
            if (place < 0) {
              reread = true; // (the entrant is not in the list: only Redis knows why)
              break;
            }
            if (place > 0) drawnPlace = place;
            reread = applyOps(next, message.ops, userId);
            next.version = message.version;
            if (message.ops.some((op) => op[0] === ChangeOpCode.SETTINGS)) {
              // (one read per process for all the event's watchers: the hub caches it)
              info = await hub.eventInfo(eventId);
              // What a user's state takes from the settings; the seats a change of them frees came as PROMOTED.
              next.opensAt = info.opensAt;
              next.admitPerMinute = info.admitPerMinute;
            }
            if (message.ops.some((op) => op[0] === ChangeOpCode.ANNOUNCED)) {
              // (one read per process for all the event's watchers: the hub caches it)
              info = await hub.eventInfo(eventId);
              announced = true;
            }
            break;
        }
      }
      if (signal.aborted) return;
      if (reread) {
        next = await store.status(eventId, userId);
        info = await hub.eventInfo(eventId);
        // Drawn and seated at once: the place is still worth telling.
        if (drawnPlace > 0 && next.drawnPlace === 0) next.drawnPlace = drawnPlace;
      }
      state = next;
      const newEventState = closed ? EventState.CLOSED : eventStateOf(info, Date.now());
      const change = changeOf(before, state, newEventState !== eventState && newEventState === EventState.CLOSED, holdExpiring) ?? (announced ? StatusChange.ANNOUNCEMENT : undefined);
      eventState = newEventState;
      if (change !== undefined) yield update(change);
      if (FINAL.has(state.status)) return;
      if (before.status !== state.status || before.holdExpiresAt !== state.holdExpiresAt) armHoldWarning();
    }
  } finally {
    clearTimeout(holdTimer);
    signal.removeEventListener("abort", onAbort);
    unwatch();
  }
}

/**
 * A pre-queued watcher told of the draw: its place, found in the published list
 * (fetched once per process for every watcher) from its own entry secret; the
 * watcher is then QUEUED there. 0: not drawn by this change; -1: not in the list.
 */
async function placeIfDrawn(store: QueueStore, eventId: string, state: StatusResult, ops: ChangeOp[]): Promise<number> {
  const drawn = ops.find((op) => op[0] === ChangeOpCode.DRAWN);
  if (!drawn || state.status !== PREQUEUED) return 0;
  // (the list unreadable, Redis away: this watcher re-reads its own state instead of failing)
  const values = await store.drawn.get(eventId, drawn[1]).catch(() => undefined);
  if (!values) return -1;
  const place = placeOf(values, drawValueOf(drawn[1], state.entrySecret));
  // Not in the list, or tied with another value (their order is by user id): only Redis knows the place.
  if (place === 0 || values[place] === values[place - 1]) return -1;
  Object.assign(state, { status: QUEUED, position: place, drawnPlace: place });
  return place;
}

/** Applies one change to a watcher's state; true when only Redis can tell the new state. */
function applyOps(state: StatusResult, ops: ChangeOp[], userId: string): boolean {
  for (const op of ops) {
    switch (op[0]) {
      case ChangeOpCode.JOINED:
      case ChangeOpCode.SEAT:
        if (op[1] === userId) return true;
        break;
      case ChangeOpCode.LEFT:
        if (op[2] === userId) return true;
        if (state.status === ReservationStatus.QUEUED && op[1] < state.position) state.position -= 1;
        break;
      case ChangeOpCode.PROMOTED:
        if (state.status === ReservationStatus.QUEUED && op[1] > 0) {
          if (state.position <= op[1]) return true; // promoted: its hold (if any) is in Redis
          state.position -= op[1];
        }
        break;
      case ChangeOpCode.RESET:
        return true;
    }
  }
  return false;
}

function changeOf(before: StatusResult, after: StatusResult, eventClosed: boolean, holdExpiring: boolean): StatusChange | undefined {
  if (after.status === ReservationStatus.CANCELLED && before.status !== after.status) return StatusChange.CANCELLED;
  if (after.status === ReservationStatus.EXPIRED && before.status !== after.status) return StatusChange.EXPIRED;
  if (after.status === ReservationStatus.ABANDONED && before.status !== after.status) return StatusChange.ABANDONED;
  if (after.status === ReservationStatus.NOT_FOUND && before.status !== after.status) return StatusChange.RESET;
  if ((before.status === QUEUED || before.status === PREQUEUED) && after.status === ReservationStatus.RESERVED) return StatusChange.PROMOTED;
  if (before.status === PREQUEUED && after.status === QUEUED) return StatusChange.DRAWN;
  if (after.status === ReservationStatus.RESERVED && before.holdExpiresAt > 0 && after.holdExpiresAt === 0) return StatusChange.CONFIRMED;
  if (after.status === ReservationStatus.QUEUED && after.position !== before.position) return StatusChange.POSITION;
  if (eventClosed) return StatusChange.EVENT_CLOSED;
  if (holdExpiring && after.status === ReservationStatus.RESERVED && after.holdExpiresAt > 0) return StatusChange.HOLD_EXPIRING;
  return undefined;
}

function waitOf(state: StatusResult): number | undefined {
  return state.status === ReservationStatus.QUEUED ? estimateWaitMs(state) : undefined;
}
