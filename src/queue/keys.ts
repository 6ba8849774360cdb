/**
 * Redis keys of one event. Every key carries the event id as its hash tag
 * (`{id}`), so all keys of an event live in one Redis Cluster slot and each Lua
 * script can touch them atomically; different events spread over the cluster.
 * The order is the KEYS order of every script (see src/lua/includes/event.lua).
 */
export function eventKeys(prefix: string, eventId: string): string[] {
  const base = `${prefix}:{${eventId}}`;
  return ["meta", "seats", "waiting", "holds", "gone", "rate", "feed", "retries", "entrants", "drawn", "drawlist", "seen", "parties"].map((name) => `${base}:${name}`);
}

/** The pub/sub channel on which an event's scripts announce changes. */
export function eventChannel(prefix: string, eventId: string): string {
  return `${prefix}:{${eventId}}:changes`;
}

/**
 * The KEYS of every event script: the event's keys, then its change channel
 * (a channel, not a key, but named in KEYS so a script declares all it touches
 * and a move to sharded pub/sub, SPUBLISH, needs no new argument; it
 * carries the same hash tag, so it is in the event's slot).
 */
export function scriptKeys(prefix: string, eventId: string): string[] {
  return [...eventKeys(prefix, eventId), eventChannel(prefix, eventId)];
}

/**
 * Marks a solved proof-of-work challenge as used (by whom), until the challenge
 * expires: `digest` is a hex digest of the challenge. In the event's slot.
 */
export function solutionKey(prefix: string, eventId: string, digest: string): string {
  return `${prefix}:{${eventId}}:pow:${digest}`;
}

/** Where the generated HMAC key for proof-of-work challenges is kept (shared by every worker). */
export function challengeKeyKey(prefix: string): string {
  return `${prefix}:challenge-key`;
}

/** Set of every event id created with CreateEvent (the default event is implicit). */
export function eventRegistryKey(prefix: string): string {
  return `${prefix}:events`;
}

/** Where the generated ticket signing key is kept when TICKET_KEY is not set. */
export function ticketKeyKey(prefix: string): string {
  return `${prefix}:ticket-key`;
}

/** The admin audit stream: every admin action, allowed or failed, by whom. */
export function auditKey(prefix: string): string {
  return `${prefix}:audit`;
}

/** Admin calls refused for want of a valid credential, kept apart (and capped) so they never push actions out. */
export function refusedAuditKey(prefix: string): string {
  return `${prefix}:audit:refused`;
}

/** A caller's rate-limit state for one limit (`<what>:<caller>`), in a slot of its own. */
export function rateLimitKey(prefix: string, caller: string): string {
  return `${prefix}:rl:{${caller}}`;
}
