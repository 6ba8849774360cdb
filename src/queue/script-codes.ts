/**
 * The numbers the Lua scripts answer with, by name: the one table TS and Lua
 * share. scripts.ts writes it into every script as Lua constants
 * (`--- @include "codes"`): ERR_NO_EVENT = -1, ST_RESERVED = 1, LAYOUT = 1, ...
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
} as const;

/** A user's entry in an event, as user_state() reports it. */
export const EntryCode = {
  RESERVED: 1,
  QUEUED: 2,
  NOT_FOUND: 3,
  CANCELLED: 4,
  EXPIRED: 5,
} as const;

/**
 * The version of what the scripts store for an event, kept in its meta hash
 * (`layout`; an event without it has layout 1). Raise it whenever a script
 * stores something an older script would misread: every event script refuses an
 * event of a newer layout (NEWER_LAYOUT, answered UNAVAILABLE so clients retry
 * and reach an upgraded worker) instead of writing into it.
 */
export const LAYOUT = 1;

/** The table as Lua `local` constants. */
export function luaConstants(): string {
  const lines = [
    ...Object.entries(Refusal).map(([name, value]) => `local ERR_${name} = ${value}`),
    ...Object.entries(EntryCode).map(([name, value]) => `local ST_${name} = ${value}`),
    `local LAYOUT = ${LAYOUT}`,
  ];
  return `-- Generated from src/queue/script-codes.ts.\n${lines.join("\n")}\n`;
}
