import { invalidField } from "./state-errors.js";

/** Longest user id accepted, in UTF-8 bytes. */
export const MAX_USER_ID_BYTES = 128;

/** Longest user id when users are known by their tokens: an identity provider's `sub` may be longer. */
export const MAX_SUBJECT_BYTES = 255;

/** The event that the paths without /v1/events act on, and that an empty event_id means. */
export const DEFAULT_EVENT_ID = "default";

// C0 controls, DEL and C1 controls.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

// Characters that show as nothing, or as something else, and so spoof names on
// the dashboard and in the CSV export: format characters (bidi overrides,
// zero-width joiners, the BOM), line and paragraph separators, every space but
// the ASCII one, default-ignorable code points (the Hangul filler), private-use,
// unassigned and surrogate code points, and the Braille blank.
const INVISIBLE = /[\p{Cf}\p{Zl}\p{Zp}\p{Default_Ignorable_Code_Point}\p{Co}\p{Cn}\p{Cs}\u2800]|(?! )\p{Zs}/u;
// More than two combining marks in a row pile up over the line ("Zalgo" text).
const STACKED_MARKS = /\p{M}{3,}/u;

// Event ids go inside a Redis hash tag, so braces (and anything unusual) are out;
// ids made only of dots would be path segments ("." and "..") no URL can reach.
const EVENT_ID = /^(?!\.+$)[A-Za-z0-9._-]{1,64}$/;

/** Throws an InvalidField state error unless `userId` is a usable id. */
export function checkUserId(userId: string, maxBytes = MAX_USER_ID_BYTES): void {
  if (userId.length === 0) throw invalidField("user_id", "is required");
  if (Buffer.byteLength(userId, "utf8") > maxBytes) throw invalidField("user_id", `is longer than ${maxBytes} bytes`);
  if (CONTROL.test(userId)) throw invalidField("user_id", "contains a control character");
  if (INVISIBLE.test(userId)) throw invalidField("user_id", "contains an invisible or look-alike character (a format, separator, non-ASCII space, private or unassigned code point)");
  if (STACKED_MARKS.test(userId)) throw invalidField("user_id", "stacks more than two combining marks on one letter");
  // Bytes that were not UTF-8 became U+FFFD on the way in: different bytes would be one user.
  if (userId.includes("\ufffd")) throw invalidField("user_id", "contains U+FFFD (bytes that were not UTF-8)");
  if (userId.trim() !== userId || userId.trim() === "") throw invalidField("user_id", "starts or ends with a space");
  // A URL resolves "." and ".." away: /status/{user_id} could never reach such a user.
  if (userId === "." || userId === "..") throw invalidField("user_id", 'cannot be "." or ".." (no URL path can name them)');
}

// What text shown to others (a train's name, an announcement) must not hold: controls
// and line breaks, bidi controls that reverse what follows ("\u202e" shows "evil" as
// "live"), and U+FFFD, which stands for bytes that were not UTF-8. Emoji and their
// joiners and variation selectors stay.
// eslint-disable-next-line no-control-regex
const UNSAFE_IN_TEXT = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ufffd]/;

/** Throws an InvalidField state error unless `text` is one line of at most `maxChars` characters, safe to show. */
export function checkShownText(field: string, text: string, maxChars: number): void {
  if ([...text].length > maxChars || UNSAFE_IN_TEXT.test(text)) throw invalidField(field, `must be one line of at most ${maxChars} characters, without control or bidi characters`);
}

/** An idempotency key: 22 to 64 printable ASCII characters (no space), or "" for none. */
export function checkIdempotencyKey(key: string): void {
  if (key !== "" && !/^[\x21-\x7e]{22,64}$/.test(key)) throw invalidField("idempotency_key", "must be 22 to 64 printable ASCII characters (random: at least 128 bits)");
}

/** The event id to use: empty means the default event; anything else must be a valid id. */
export function eventIdOf(eventId: string): string {
  if (eventId === "") return DEFAULT_EVENT_ID;
  if (!EVENT_ID.test(eventId)) throw invalidField("event_id", "must be 1 to 64 of A-Z a-z 0-9 . _ -, not only dots");
  return eventId;
}
