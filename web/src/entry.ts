// The traveller's place in line, kept in this browser: the ticket alone is enough
// to pick it up again (it names the user and the train), so a link carrying it
// moves the place to another device.

export interface Entry {
  eventId: string;
  userId: string;
  ticket: string;
}

const ENTRY_KEY = "tq.entry";
const USER_TOKEN_KEY = "tq.userToken";

/** The user token the operator's site handed over (#token=…), when the service knows its users. */
export function loadUserToken(): string | undefined {
  return localStorage.getItem(USER_TOKEN_KEY) ?? undefined;
}

export function saveUserToken(token: string): void {
  localStorage.setItem(USER_TOKEN_KEY, token);
}

/** The `sub` a JWT claims (read, not verified: the service verifies it on every call). */
export function subjectOf(token: string): string | undefined {
  const claims = claimsOf(token);
  return typeof claims?.["sub"] === "string" ? claims["sub"] : undefined;
}

function claimsOf(token: string): Record<string, unknown> | undefined {
  const payload = token.split(".")[1];
  if (!payload) return undefined;
  try {
    const bytes = Uint8Array.from(atob(payload.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
    const claims: unknown = JSON.parse(new TextDecoder().decode(bytes));
    return typeof claims === "object" && claims !== null ? (claims as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
const TRAVELLER_KEY = "tq.traveller";

export function loadEntry(): Entry | undefined {
  const saved = localStorage.getItem(ENTRY_KEY);
  return saved ? entryFromTicket(saved) : undefined;
}

export function saveEntry(entry: Entry): void {
  localStorage.setItem(ENTRY_KEY, entry.ticket);
  localStorage.setItem(TRAVELLER_KEY, entry.userId);
}

/** Forgets the place once it has ended, and the key of the join that made it. */
export function clearEntry(): void {
  const ended = loadEntry();
  localStorage.removeItem(ENTRY_KEY);
  if (ended) forgetJoinKey(ended.eventId);
}

const JOIN_KEY = "tq.join.";

/**
 * The idempotency key of this browser's join of a train: made before the first
 * attempt and sent again with every retry of it, so a join whose answer was lost
 * still ends with the ticket. Forgotten when the place ends (the next join is new).
 */
export function joinKey(eventId: string): string {
  let key = localStorage.getItem(JOIN_KEY + eventId);
  if (!key) {
    // 144 random bits, base64url: 24 characters.
    key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(18))))
      .replace(/\+/g, "-")
      .replace(/\//g, "_");
    localStorage.setItem(JOIN_KEY + eventId, key);
  }
  return key;
}

export function forgetJoinKey(eventId: string): void {
  localStorage.removeItem(JOIN_KEY + eventId);
}

/** This browser's traveller id: made once, then reused for every train. */
export function travellerId(): string {
  let id = localStorage.getItem(TRAVELLER_KEY);
  if (!id) {
    id = crypto.randomUUID();
    localStorage.setItem(TRAVELLER_KEY, id);
  }
  return id;
}

/**
 * Reads the train (`evt`) and user (`sub`) from a ticket's claims. The signature
 * is the server's to check (every call that takes a ticket verifies it).
 */
export function entryFromTicket(ticket: string): Entry | undefined {
  const claims = claimsOf(ticket);
  const evt = claims?.["evt"];
  const sub = claims?.["sub"];
  return typeof evt === "string" && typeof sub === "string" ? { eventId: evt, userId: sub, ticket } : undefined;
}
