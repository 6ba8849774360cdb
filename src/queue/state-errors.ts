/**
 * Why the state layer (queue, tickets, watch, redis) refused or failed a call:
 * one code each. The RPC layer turns them into RPC statuses in one table
 * (src/rpc/errors.ts); this layer knows nothing of transports.
 */
export enum StateErrorCode {
  /** A request field is malformed (`field` names it). */
  InvalidField = "invalid_field",
  NoSuchEvent = "no_such_event",
  EventExists = "event_exists",
  NotOpenYet = "not_open_yet",
  Paused = "paused",
  Closed = "closed",
  /** The user has no entry in the event. */
  NoEntry = "no_entry",
  /** Confirm: the user is still waiting, cancelled, or the hold ran out. */
  StillQueued = "still_queued",
  UserCancelled = "user_cancelled",
  /** Reserve: a party larger than the event allows. */
  PartyTooLarge = "party_too_large",
  /** UpdateEvent: a capacity below a waiting party's size. */
  PartyExceedsCapacity = "party_exceeds_capacity",
  /** The user left the line for want of a sign of presence (a walk-away). */
  Abandoned = "abandoned",
  HoldExpired = "hold_expired",
  TicketRequired = "ticket_required",
  /** Forged, malformed or without exp. */
  TicketInvalid = "ticket_invalid",
  TicketExpired = "ticket_expired",
  /** A valid ticket, but for another user or event. */
  TicketMismatch = "ticket_mismatch",
  /** A valid ticket for an earlier entry of the same user. */
  TicketStale = "ticket_stale",
  TooManyWatches = "too_many_watches",
  /** The process is stopping: long-lived streams end so clients reconnect elsewhere. */
  ShuttingDown = "shutting_down",
  /** An event's keys in Redis hold the wrong type (written by hand): an operator must repair or reset it. */
  DamagedData = "damaged_data",
  /** Proof of work: none sent, not a solution of ours (or for another event or user), expired, or used by another. */
  ChallengeRequired = "challenge_required",
  ChallengeInvalid = "challenge_invalid",
  ChallengeExpired = "challenge_expired",
  ChallengeUsed = "challenge_used",
  /** As many wait as the event's max_waiting allows. */
  QueueFull = "queue_full",
  /** The event was laid out by newer scripts (a rolling restart is under way): retryable. */
  NewerLayout = "newer_layout",
  /** The pre-queue's draw is due or under way: what it depends on can no longer change. */
  DrawStarted = "draw_started",
  /** A beacon value the event is not waiting for. */
  NoBeaconExpected = "no_beacon_expected",
}

export class StateError extends Error {
  override readonly name = "StateError";

  constructor(
    readonly code: StateErrorCode,
    message: string,
    /** InvalidField: the request field at fault. */
    readonly field?: string,
  ) {
    super(message);
  }
}

/** A malformed request field: the message is "<field> <description>". */
export function invalidField(field: string, description: string): StateError {
  return new StateError(StateErrorCode.InvalidField, `${field} ${description}`, field);
}
