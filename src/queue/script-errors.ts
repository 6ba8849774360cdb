import { Refusal } from "./script-codes.js";
import { StateError, StateErrorCode } from "./state-errors.js";

/**
 * The refusals the Lua scripts answer with (script-codes.ts), as typed state errors.
 * `detail` is the number a script sends after the code (a time or a position).
 */
export function scriptError(code: number, eventId: string, detail: number | undefined): Error {
  // A stored time out of Date's range (written by hand) must not turn a refusal into a crash.
  const at = (ms: number | undefined): string => {
    const date = new Date(ms ?? 0);
    return Number.isNaN(date.getTime()) ? String(ms) : date.toISOString();
  };
  switch (code) {
    case Refusal.NO_EVENT:
      return new StateError(StateErrorCode.NoSuchEvent, `event ${eventId} does not exist`);
    case Refusal.NOT_OPEN_YET:
      return new StateError(StateErrorCode.NotOpenYet, `event ${eventId} is not open yet: it opens at ${at(detail)}`);
    case Refusal.PAUSED:
      return new StateError(StateErrorCode.Paused, `event ${eventId} is paused: try again when it resumes`);
    case Refusal.CLOSED:
      return new StateError(StateErrorCode.Closed, `event ${eventId} closed at ${at(detail)}`);
    case Refusal.TICKET_STALE:
      return new StateError(StateErrorCode.TicketStale, "the ticket belongs to an earlier entry of this user");
    case Refusal.STILL_QUEUED:
      return new StateError(StateErrorCode.StillQueued, `the user is still queued (position ${detail ?? 0}): there is no seat to confirm`);
    case Refusal.USER_CANCELLED:
      return new StateError(StateErrorCode.UserCancelled, "the user cancelled: there is no seat to confirm");
    case Refusal.HOLD_EXPIRED:
      return new StateError(StateErrorCode.HoldExpired, "the hold expired: the seat went to the next in line");
    case Refusal.NO_ENTRY:
      return new StateError(StateErrorCode.NoEntry, `the user has no entry in event ${eventId}`);
    case Refusal.EVENT_EXISTS:
      return new StateError(StateErrorCode.EventExists, `event ${eventId} already exists`);
    case Refusal.CHALLENGE_REQUIRED:
      return new StateError(StateErrorCode.ChallengeRequired, `event ${eventId} asks for proof of work: solve a challenge from GetChallenge and send it as pow_solution`);
    case Refusal.CHALLENGE_USED:
      return new StateError(StateErrorCode.ChallengeUsed, "this solved challenge was already used: get a new one");
    case Refusal.QUEUE_FULL:
      return new StateError(StateErrorCode.QueueFull, `event ${eventId}'s queue is full (${detail ?? 0} waiting): try again later`);
    case Refusal.NEWER_LAYOUT:
      return new StateError(StateErrorCode.NewerLayout, `event ${eventId} was laid out by a newer version of the service (layout ${detail ?? "?"}): retry, an upgraded worker will answer`);
    case Refusal.PARTY_TOO_LARGE:
      return new StateError(StateErrorCode.PartyTooLarge, `event ${eventId} seats parties of at most ${detail ?? 1}: send a smaller party_size`, "party_size");
    case Refusal.PARTY_EXCEEDS_CAPACITY:
      return new StateError(StateErrorCode.PartyExceedsCapacity, `a party of ${detail ?? "?"} waits in event ${eventId}: the capacity cannot go below it (the line would stop behind it)`);
    case Refusal.ABANDONED:
      return new StateError(StateErrorCode.Abandoned, "the user left the line after too long without a sign of presence: there is no seat to confirm");
    case Refusal.DRAW_STARTED:
      return new StateError(StateErrorCode.DrawStarted, `event ${eventId}'s pre-queue draw is due or under way: its opening, pre-queue and beacon can no longer change`);
    case Refusal.NO_BEACON_EXPECTED:
      return new StateError(StateErrorCode.NoBeaconExpected, `event ${eventId} takes a draw beacon only when it announced a draw_beacon_source, after its opening and before its draw, once`);
    default:
      // Not a refusal: a script this code does not know (a bug), answered as an internal error.
      return new Error(`script answered unknown code ${code}`);
  }
}
