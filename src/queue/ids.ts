import { invalidField } from "./state-errors.js";

/** Longest user id accepted, in UTF-8 bytes. */
export const MAX_USER_ID_BYTES = 128;

/** The event that the paths without /v1/events act on, and that an empty event_id means. */
export const DEFAULT_EVENT_ID = "default";

// C0 controls, DEL and C1 controls.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

// Unicode format and separator characters (bidi overrides, zero-width joiners, the
// BOM, line and paragraph separators): invisible, they spoof names on the dashboard
// and in the CSV export.
const INVISIBLE = /[\p{Cf}\p{Zl}\p{Zp}]/u;

// Event ids go inside a Redis hash tag, so braces (and anything unusual) are out;
// ids made only of dots would be path segments ("." and "..") no URL can reach.
const EVENT_ID = /^(?!\.+$)[A-Za-z0-9._-]{1,64}$/;

/** Throws an InvalidField state error unless `userId` is a usable id. */
export function checkUserId(userId: string): void {
  if (userId.length === 0) throw invalidField("user_id", "is required");
  if (Buffer.byteLength(userId, "utf8") > MAX_USER_ID_BYTES) throw invalidField("user_id", `is longer than ${MAX_USER_ID_BYTES} bytes`);
  if (CONTROL.test(userId)) throw invalidField("user_id", "contains a control character");
  if (INVISIBLE.test(userId)) throw invalidField("user_id", "contains an invisible format or separator character");
}

/** The event id to use: empty means the default event; anything else must be a valid id. */
export function eventIdOf(eventId: string): string {
  if (eventId === "") return DEFAULT_EVENT_ID;
  if (!EVENT_ID.test(eventId)) throw invalidField("event_id", "must be 1 to 64 of A-Z a-z 0-9 . _ -, not only dots");
  return eventId;
}
