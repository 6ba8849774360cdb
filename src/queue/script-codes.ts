/**
 * The numbers the Lua scripts answer with, by name: the one table TS and Lua
 * share. scripts.ts writes it into every script as Lua constants
 * (`--- @include "codes"`): ERR_NO_EVENT = -1, ST_RESERVED = 1, OP_JOINED = 'J',
 * FEED_PROMOTED = 'P', GONE_CANCELLED = 'C', LAYOUT = 1, ...
 */

/** A script's refusal: the first element of its reply, negative. */
export const Refusal = {
  NO_EVENT: -1,
  NOT_OPEN_YET: -2,
  PAUSED: -3,
  CLOSED: -4,
  TICKET_STALE: -5,
  STILL_QUEUED: -6,
  USER_CANCELLED: -7,
  HOLD_EXPIRED: -8,
  NO_ENTRY: -9,
  EVENT_EXISTS: -10,
  /** The event was laid out by newer scripts than these (a rolling restart is under way). */
  NEWER_LAYOUT: -11,
  /** As many wait as the event's max_waiting allows. */
  QUEUE_FULL: -12,
  /** The event asks for proof of work and the Reserve carries none. */
  CHALLENGE_REQUIRED: -13,
  /** Another user's Reserve already used this solved challenge. */
  CHALLENGE_USED: -14,
  /** The draw is due or under way: what it depends on can no longer change. */
  DRAW_STARTED: -15,
  /** A beacon value for an event that announced no beacon source, or has no pre-queue to draw. */
  NO_BEACON_EXPECTED: -16,
  /** Confirm: the user left the line for want of a sign of presence. */
  ABANDONED: -17,
  /** Reserve: a party larger than the event's max_party_size. */
  PARTY_TOO_LARGE: -18,
  /** UpdateEvent: a capacity smaller than a waiting party (it would block the line for good). */
  PARTY_EXCEEDS_CAPACITY: -19,
} as const;

/** A user's entry in an event, as user_state() reports it. */
export const EntryCode = {
  RESERVED: 1,
  QUEUED: 2,
  NOT_FOUND: 3,
  CANCELLED: 4,
  EXPIRED: 5,
  /** In an event's pre-queue, waiting for the draw at its opening. */
  PREQUEUED: 6,
  /** Left the line: no sign of presence for the event's presence timeout. */
  ABANDONED: 7,
} as const;

/** What moved, in a change message published on the event's channel (`changed` in event.lua). */
export const ChangeOpCode = {
  /** {J, user}: joined the back of the queue. */
  JOINED: "J",
  /** {L, position, user}: left the queue from position (everyone behind moves up one). */
  LEFT: "L",
  /** {P, n}: the first n of the queue were promoted. */
  PROMOTED: "P",
  /** {S, user}: the user's seat changed (taken, confirmed, cancelled, expired). */
  SEAT: "S",
  /** {X}: reset, every entry is gone. */
  RESET: "X",
  /** {U}: the event's settings changed. */
  SETTINGS: "U",
  /** {D, final_seed}: the pre-queue was drawn; its entrants now wait in draw order. */
  DRAWN: "D",
  /** {N}: the operator's announcement changed. */
  ANNOUNCED: "N",
} as const;

/** Where an event's pre-queue draw is (meta field draw_state; absent: the event has no pre-queue). */
export const DrawStateCode = { OPEN: "open", DRAWING: "drawing", DONE: "done" } as const;

/** The kind of a feed entry (field `k` of the event's feed stream). */
export const FeedKindCode = { PROMOTED: "P", EXPIRED: "E", CANCELLED: "C", ABANDONED: "A" } as const;

/** Why an entry ended, as the gone hash marks it before the seq ("C12", "E7"). */
export const GoneCode = { CANCELLED: "C", EXPIRED: "E", ABANDONED: "A" } as const;

/**
 * The version of what the scripts store for an event, kept in its meta hash
 * (`layout`; an event without it has layout 1). Raise it whenever a script
 * stores something an older script would misread: every event script refuses an
 * event of a newer layout (NEWER_LAYOUT, answered UNAVAILABLE so clients retry
 * and reach an upgraded worker) instead of writing into it.
 *   1: the first layout.
 *   2: an event may ask for proof of work (pow_difficulty), which layout-1 scripts
 *      would skip; UpdateEvent raises an event to the current layout.
 *   3: an event may have a pre-queue and its draw (the entrants and drawn keys,
 *      draw_* fields): layout-2 scripts would seat entrants before the draw.
 *   4: an event may pace its entry (admit_per_minute, admit_tat), which layout-3
 *      scripts would ignore.
 *   5: an event may drop walk-aways (presence_timeout_seconds, the seen key,
 *      gone "A"), which layout-4 scripts would not.
 *   6: parties (the parties key, max_party_size, seats_extra/held_extra):
 *      layout-5 scripts would count a party as one seat.
 */
export const LAYOUT = 6;

/** Walk-aways: a waiting user unseen for the presence timeout gets that much again, up to this, before leaving the line. */
export const PRESENCE_GRACE_MAX_MS = 60_000;

/**
 * Paced entry (admit_per_minute = N): one admission every ADMIT_SPAN_MS / N ms,
 * up to ADMIT_BURST_MS' worth at once (a sweep comes every 250 ms). GCRA with
 * these two bounds admits at most N in any 60 seconds: the steady pace is N x 60/61.
 */
export const ADMIT_SPAN_MS = 61_000;
export const ADMIT_BURST_MS = 1_000;

/** The table as Lua `local` constants. */
export function luaConstants(): string {
  const lines = [
    ...Object.entries(Refusal).map(([name, value]) => `local ERR_${name} = ${value}`),
    ...Object.entries(EntryCode).map(([name, value]) => `local ST_${name} = ${value}`),
    ...Object.entries(ChangeOpCode).map(([name, value]) => `local OP_${name} = '${value}'`),
    ...Object.entries(FeedKindCode).map(([name, value]) => `local FEED_${name} = '${value}'`),
    ...Object.entries(GoneCode).map(([name, value]) => `local GONE_${name} = '${value}'`),
    ...Object.entries(DrawStateCode).map(([name, value]) => `local DRAW_${name} = '${value}'`),
    `local LAYOUT = ${LAYOUT}`,
    `local ADMIT_SPAN_MS = ${ADMIT_SPAN_MS}`,
    `local ADMIT_BURST_MS = ${ADMIT_BURST_MS}`,
    `local PRESENCE_GRACE_MAX_MS = ${PRESENCE_GRACE_MAX_MS}`,
  ];
  return `-- Generated from src/queue/script-codes.ts.\n${lines.join("\n")}\n`;
}
