import { EventState, ReservationStatus, StatusChange } from "../../gen/ticketqueue/v1/ticket_queue_pb.js";
import { eventStateOf } from "../queue/event-state.js";
import { StateError, StateErrorCode } from "../queue/state-errors.js";
import type { Announcement, EventInfo, QueueStore, StatusResult } from "../queue/queue-store.js";
import { ChangeOpCode } from "../queue/script-codes.js";
import { estimateWaitMs } from "../queue/wait-estimate.js";
import { drawValueOf, placeOf } from "../queue/draw.js";
import type { PushStream, StreamSink } from "./push-stream.js";
import type { ChangeHub, ChangeOp, HubMessage } from "./change-hub.js";

/** One message of a WatchStatus stream. */
export interface StatusUpdate {
  eventId: string;
  userId: string;
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
/**
 * The same for a pushed watcher. Its drain never waits on its client (the writer
 * drops one that leaves too much unread), only on Redis now and then, so its
 * inbox fills only for that long, or within one read of the hub's socket, which
 * can bring hundreds of changes handled in one go (a storm): kept, not collapsed
 * into a status read per watcher. Each is a reference to the hub's one message.
 */
const MAX_PUSHED_INBOX = 4096;

/** Warn this long (at most) before a hold runs out. */
const HOLD_WARNING_MS = 30_000;

const { PREQUEUED, QUEUED } = ReservationStatus;

const FINAL = new Set([ReservationStatus.CANCELLED, ReservationStatus.EXPIRED, ReservationStatus.ABANDONED, ReservationStatus.NOT_FOUND]);

type InboxMessage = HubMessage | { kind: "holdExpiring" };

/** What a watch took for its user, given back when it closes. */
export interface WatchHolds {
  release(eventId: string, userId: string): void;
}

/**
 * A user's state, then every change to it. The state is read from Redis once;
 * after that it is kept exact from the event's change feed (a position moves up
 * when someone ahead leaves or is promoted), and re-read from Redis only when
 * the user's own entry changed, a version was skipped, or the feed reconnected.
 *
 * Read as an async iterable, changes wait in an inbox until the reader asks
 * (one that stops reading collapses them into one re-read, see MAX_INBOX).
 * Pushed (PushStream: the fast paths' gRPC, gRPC-web and SSE writers; Connect
 * streaming through connect-node reads it), each change the hub
 * delivers is applied and told at once, and an open watch waits on nothing:
 * tens of thousands of them wait at the opening of a sale.
 */
export class StatusWatch implements PushStream<StatusUpdate> {
  private readonly inbox: InboxMessage[] = [];
  private state!: StatusResult;
  private info!: EventInfo;
  private eventState!: EventState;
  /** Watching the hub: let go on close. */
  private watching = false;
  private holdTimer: NodeJS.Timeout | undefined;
  /** A reader waiting for the inbox. */
  private waiting: (() => void) | undefined;
  /** Pushed: where updates go (after the first). */
  private sink: StreamSink<StatusUpdate> | undefined;
  private draining = false;
  /** Read: the last read asked for (the next waits for it). */
  private reading: Promise<unknown> | undefined;
  private opened = false;
  /** A final state was told: nothing more comes. */
  private finished = false;
  /** Let go of the hub, the timer and the signal. */
  private closed = false;
  /** Read: the call's signal (the client left), listened to while reading. */
  private signal: AbortSignal | undefined;

  constructor(
    private readonly store: QueueStore,
    private readonly hub: ChangeHub,
    private readonly eventId: string,
    private readonly userId: string,
    /** The ticket's entry; undefined: the user's current entry (the caller proved who it is). */
    private readonly ticketSeq: number | undefined,
    /** The call's signal, made only when read: pushed, its writer stops it when the client leaves (stop()). */
    private readonly signals: { signal(): AbortSignal },
    /** Told once when the watch lets go: what the stream took (its place in a quota, its presence). */
    private readonly holds?: WatchHolds,
  ) {}

  [Symbol.asyncIterator](): AsyncIterator<StatusUpdate> {
    return {
      next: () => this.next(),
      return: () => {
        this.close();
        return Promise.resolve({ done: true, value: undefined });
      },
    };
  }

  push(sink: StreamSink<StatusUpdate>): void {
    void this.open()
      .then((initial) => {
        if (!initial) return;
        sink.message(initial);
        // (the sink may have stopped it while told)
        if (this.closed) return;
        if (this.finished) return this.end(sink);
        // From now on each delivery is applied and told at once.
        this.sink = sink;
        void this.drainPushed();
      })
      .catch((err: unknown) => this.fail(sink, err));
  }

  stop(): void {
    this.close();
  }

  /** Pushed: applies and tells what the inbox holds, one drain at a time (the running one takes what comes meanwhile). */
  private async drainPushed(): Promise<void> {
    const { sink } = this;
    if (this.draining || !sink) return;
    this.draining = true;
    try {
      // What the hub tells in one go (a held run of changes) lands in the inbox first: one update for all of it.
      await undefined;
      while (!this.closed) {
        if (this.inbox.length === 0) return;
        const update = await this.drain();
        if (this.closed) return;
        if (update) sink.message(update);
        // (the sink may have stopped it while told)
        if (this.closed) return;
        if (this.finished) return this.end(sink);
      }
    } catch (err: unknown) {
      this.fail(sink, err);
    } finally {
      this.draining = false;
    }
  }

  private end(sink: StreamSink<StatusUpdate>): void {
    this.close();
    sink.end();
  }

  private fail(sink: StreamSink<StatusUpdate>, err: unknown): void {
    if (this.closed) return;
    this.close();
    sink.fail(err);
  }

  /** One read at a time, in order, as an async generator takes overlapping `next()` calls. */
  private next(): Promise<IteratorResult<StatusUpdate>> {
    const read = (this.reading ?? Promise.resolve()).then(() => this.read());
    this.reading = read.catch(() => undefined);
    return read;
  }

  private async read(): Promise<IteratorResult<StatusUpdate>> {
    try {
      if (!this.signal) {
        this.signal = this.signals.signal();
        this.signal.addEventListener("abort", this);
      }
      // A client that left before or while the watch opened is done with it: its reader
      // (connect-node's) may never read again, or say it stopped, to end it otherwise.
      if (!this.opened && !this.signal.aborted) {
        const initial = await this.open();
        if (initial && !this.signal.aborted) return { done: false, value: initial };
      }
      while (!this.finished && !this.closed && !this.signal.aborted) {
        if (this.inbox.length === 0) await new Promise<void>((resolve) => (this.waiting = resolve));
        if (this.closed || this.signal.aborted) break;
        const update = await this.drain();
        if (update) return { done: false, value: update };
      }
      this.close();
      // Cut by its call's signal (the deadline passed, the client left) before a final state: it
      // fails with why, as a handler's call would, so a passed deadline is not told as a clean end.
      if (!this.finished) this.signal.throwIfAborted();
      return { done: true, value: undefined };
    } catch (err: unknown) {
      this.close();
      throw err;
    }
  }

  private readonly deliver = (message: InboxMessage): void => {
    if (this.closed) return;
    if (this.inbox.length >= (this.sink ? MAX_PUSHED_INBOX : MAX_INBOX)) {
      // Not read for a while (a client that does not read its stream): keep no
      // change at all, only a note to re-read Redis once it is read again.
      const kept = this.inbox.filter((m) => m.kind !== "change" && m.kind !== "resync");
      this.inbox.length = 0;
      this.inbox.push(...kept, { kind: "resync" });
    }
    this.inbox.push(message);
    this.wake();
  };

  private wake(): void {
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.();
    if (this.sink && !this.draining) void this.drainPushed();
  }

  /** The signal's abort (the client left): this object is its listener, no closure per watch. */
  handleEvent(): void {
    this.wake();
  }

  /** Subscribes, then reads the state: the INITIAL update (none if it was closed meanwhile). */
  private async open(): Promise<StatusUpdate | undefined> {
    this.opened = true;
    // Subscribed before the first read: nothing that happens after the read is missed.
    // (`watch` answers a function that stops it; `unwatch` does the same without one held per watch)
    await this.hub.watch(this.eventId, this.userId, this.deliver);
    if (this.closed) {
      this.hub.unwatch(this.eventId, this.userId, this.deliver);
      return undefined;
    }
    this.watching = true;
    this.state = await this.store.status(this.eventId, this.userId);
    if (this.ticketSeq !== undefined && this.state.status !== ReservationStatus.NOT_FOUND && this.state.seq !== this.ticketSeq) {
      throw new StateError(StateErrorCode.TicketStale, "the ticket belongs to an earlier entry of this user");
    }
    this.info = await this.hub.eventInfo(this.eventId);
    this.eventState = eventStateOf(this.info, this.info.now);
    if (this.closed) return undefined;
    const initial = this.update(StatusChange.INITIAL);
    if (FINAL.has(this.state.status)) this.finished = true;
    else this.armHoldWarning();
    return initial;
  }

  /** Lets go of everything; a reader waiting is told the stream ended. */
  private close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.holdTimer);
    this.signal?.removeEventListener("abort", this);
    if (this.watching) this.hub.unwatch(this.eventId, this.userId, this.deliver);
    this.inbox.length = 0;
    this.sink = undefined;
    this.holds?.release(this.eventId, this.userId);
    this.wake();
  }

  private update(change: StatusChange): StatusUpdate {
    // Versions this watcher was not given (other users' joins) still count: with nothing of its
    // own waiting, its state is the state as of the last version this process saw in a run from it.
    const seen = this.hub.seen(this.eventId);
    if (this.inbox.length === 0 && seen && seen.since <= this.state.version + 1 && seen.last > this.state.version) this.state = { ...this.state, version: seen.last };
    const { state } = this;
    return { eventId: this.eventId, userId: this.userId, version: state.version, change, state, estimatedWaitMs: waitOf(state), eventState: this.eventState, announcement: this.info.announcement };
  }

  private armHoldWarning(): void {
    clearTimeout(this.holdTimer);
    this.holdTimer = undefined;
    const { state } = this;
    // (closed while a read was on its way: no timer may outlive the watch)
    if (this.closed) return;
    if (state.status !== ReservationStatus.RESERVED || state.holdExpiresAt === 0) return;
    const left = state.holdExpiresAt - Date.now();
    this.holdTimer = setTimeout(() => this.deliver({ kind: "holdExpiring" }), Math.max(0, left - Math.min(HOLD_WARNING_MS, left / 2)));
  }

  /** Applies everything the inbox holds: the update to tell, if any. */
  private async drain(): Promise<StatusUpdate | undefined> {
    const { store, eventId, userId } = this;
    let reread = false;
    let closed = false;
    let holdExpiring = false;
    let drawnPlace = 0;
    let announced = false;
    /** A change of settings this watch's state already holds (read from Redis), maybe not its settings (the hub's, read before it). */
    let settingsBehind = false;
    const before = this.state;
    let next = { ...before };
    for (const message of this.inbox.splice(0)) {
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
          if (message.version <= next.version) {
            // Already part of the state; the settings read with it may be older (the hub dropped them only as this came).
            if (message.ops.some((op) => op[0] === ChangeOpCode.SETTINGS || op[0] === ChangeOpCode.ANNOUNCED)) settingsBehind = true;
            break;
          }
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
            this.info = await this.hub.eventInfo(eventId);
            // What a user's state takes from the settings; the seats a change of them frees came as PROMOTED.
            next.opensAt = this.info.opensAt;
            next.admitPerMinute = this.info.admitPerMinute;
          }
          if (message.ops.some((op) => op[0] === ChangeOpCode.ANNOUNCED)) {
            // (one read per process for all the event's watchers: the hub caches it)
            this.info = await this.hub.eventInfo(eventId);
            announced = true;
          }
          break;
      }
    }
    if (this.signal?.aborted || this.closed) return undefined;
    if (settingsBehind || reread) {
      // (an announcement made in a gap, or one the settings read with the state did not have yet, is told)
      const told = this.info.announcement;
      this.info = await this.hub.eventInfo(eventId);
      if (!sameAnnouncement(told, this.info.announcement)) announced = true;
    }
    if (reread) {
      next = await store.status(eventId, userId);
      // Drawn and seated at once: the place is still worth telling.
      if (drawnPlace > 0 && next.drawnPlace === 0) next.drawnPlace = drawnPlace;
    }
    this.state = next;
    const eventState = closed ? EventState.CLOSED : eventStateOf(this.info, Date.now());
    const change =
      changeOf(before, next, eventState !== this.eventState && eventState === EventState.CLOSED, holdExpiring) ??
      (announced ? StatusChange.ANNOUNCEMENT : eventState !== this.eventState ? StatusChange.EVENT_STATE : undefined);
    this.eventState = eventState;
    if (FINAL.has(next.status)) this.finished = true;
    else if (before.status !== next.status || before.holdExpiresAt !== next.holdExpiresAt) this.armHoldWarning();
    return change === undefined ? undefined : this.update(change);
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

function sameAnnouncement(a: Announcement | undefined, b: Announcement | undefined): boolean {
  return a?.at === b?.at && a?.ko === b?.ko && a?.en === b?.en;
}

function waitOf(state: StatusResult): number | undefined {
  return state.status === ReservationStatus.QUEUED ? estimateWaitMs(state) : undefined;
}
