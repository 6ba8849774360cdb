import { randomUUID } from "node:crypto";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";
import { BadRequestSchema, ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { StateError, StateErrorCode } from "../queue/state-errors.js";
import { RedisUnavailableError } from "../redis/redis-errors.js";
import { passThrough } from "./stream-end.js";

/** The RPC status of each state error: the one table. */
const STATE_ERROR_CODES: Record<StateErrorCode, Code> = {
  [StateErrorCode.InvalidField]: Code.InvalidArgument,
  [StateErrorCode.NoSuchEvent]: Code.NotFound,
  [StateErrorCode.EventExists]: Code.AlreadyExists,
  [StateErrorCode.NotOpenYet]: Code.FailedPrecondition,
  [StateErrorCode.Paused]: Code.FailedPrecondition,
  [StateErrorCode.Closed]: Code.FailedPrecondition,
  [StateErrorCode.NoEntry]: Code.NotFound,
  [StateErrorCode.StillQueued]: Code.FailedPrecondition,
  [StateErrorCode.UserCancelled]: Code.FailedPrecondition,
  [StateErrorCode.Abandoned]: Code.FailedPrecondition,
  [StateErrorCode.PartyTooLarge]: Code.InvalidArgument,
  [StateErrorCode.PartyExceedsCapacity]: Code.FailedPrecondition,
  [StateErrorCode.HoldExpired]: Code.FailedPrecondition,
  [StateErrorCode.TicketRequired]: Code.Unauthenticated,
  [StateErrorCode.TicketInvalid]: Code.Unauthenticated,
  [StateErrorCode.TicketExpired]: Code.Unauthenticated,
  [StateErrorCode.TicketMismatch]: Code.PermissionDenied,
  [StateErrorCode.TicketStale]: Code.PermissionDenied,
  [StateErrorCode.TooManyWatches]: Code.ResourceExhausted,
  [StateErrorCode.ShuttingDown]: Code.Unavailable,
  [StateErrorCode.DamagedData]: Code.FailedPrecondition,
  [StateErrorCode.NewerLayout]: Code.Unavailable,
  [StateErrorCode.QueueFull]: Code.ResourceExhausted,
  [StateErrorCode.ChallengeRequired]: Code.FailedPrecondition,
  [StateErrorCode.ChallengeInvalid]: Code.FailedPrecondition,
  [StateErrorCode.ChallengeExpired]: Code.FailedPrecondition,
  [StateErrorCode.ChallengeUsed]: Code.FailedPrecondition,
  [StateErrorCode.DrawStarted]: Code.FailedPrecondition,
  [StateErrorCode.NoBeaconExpected]: Code.FailedPrecondition,
};

/** State errors a client acts on by reason (google.rpc.ErrorInfo), beyond the code. */
const ERROR_INFO_REASONS: Partial<Record<StateErrorCode, string>> = {
  [StateErrorCode.ChallengeRequired]: "CHALLENGE_REQUIRED",
  [StateErrorCode.ChallengeInvalid]: "CHALLENGE_INVALID",
  [StateErrorCode.ChallengeExpired]: "CHALLENGE_EXPIRED",
  [StateErrorCode.ChallengeUsed]: "CHALLENGE_USED",
};

/**
 * The one place where failures become RPC errors. The RPC layer's own are
 * already ConnectErrors; state errors map by their code (a malformed field
 * with a google.rpc.BadRequest detail naming it); Redis being unreachable is
 * Unavailable (retryable); an abort's own reason (the client left) is
 * Canceled; anything else is a bug and answers Internal without leaking its
 * message.
 */
export function toConnectError(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  if (err instanceof StateError) {
    const reason = ERROR_INFO_REASONS[err.code];
    const details =
      err.field !== undefined
        ? [{ desc: BadRequestSchema, value: { fieldViolations: [{ field: err.field, description: err.message.slice(err.field.length + 1) }] } }]
        : reason !== undefined
          ? [{ desc: ErrorInfoSchema, value: { reason, domain: "ticketqueue.v1" } }]
          : [];
    return new ConnectError(err.message, STATE_ERROR_CODES[err.code], undefined, details, err);
  }
  if (err instanceof RedisUnavailableError) return new ConnectError(err.message, Code.Unavailable, undefined, undefined, err);
  // An aborted signal's own reason (the client left): not a failure of ours.
  if (err instanceof Error && err.name === "AbortError") return new ConnectError("the call was cancelled", Code.Canceled, undefined, undefined, err);
  return new ConnectError("internal error", Code.Internal, undefined, undefined, err);
}

/** The header that carries a request's id, in and out. */
export const REQUEST_ID_HEADER = "x-request-id";

// A caller's own id is kept when it is plain; anything else is replaced.
const USABLE_REQUEST_ID = /^[\w.:-]{1,128}$/;

/**
 * An error as it may be logged: ioredis attaches the failed command, arguments
 * and all (a fresh draw seed, an entrant's secret, a user id), which the log
 * must never carry.
 */
export function loggable(err: unknown): unknown {
  if (!(err instanceof Error) || !("command" in err)) return err;
  const copy = new Error(err.message);
  copy.name = err.name;
  copy.stack = err.stack;
  return copy;
}

/**
 * Gives every call a request id (the caller's x-request-id, or a new one),
 * answers it in the x-request-id header or error metadata, and maps every
 * failure with toConnectError, logging (with the id) the ones that are bugs.
 */
export function errorInterceptor(log: Logger): Interceptor {
  return (next) => async (req) => {
    const given = req.header.get(REQUEST_ID_HEADER);
    const requestId = given !== null && USABLE_REQUEST_ID.test(given) ? given : randomUUID();
    // The name, not the request: an open stream keeps `mapped`, and would keep the request (headers and all).
    const rpc = req.method.name;
    const mapped = (err: unknown): ConnectError => {
      let connectErr = toConnectError(err);
      if (connectErr.code === Code.Internal || connectErr.code === Code.Unavailable) {
        const cause = connectErr.cause ?? err;
        if (connectErr.code === Code.Internal) log.error({ err: loggable(cause), rpc, requestId }, "rpc failed");
        else log.debug({ rpc, requestId, reason: connectErr.rawMessage, cause: cause instanceof Error && cause.cause instanceof Error ? cause.cause.message : undefined }, "rpc unavailable");
        // The id in the message too: what a user quotes to support finds the log line.
        const withId = new ConnectError(`${connectErr.rawMessage} (request id ${requestId})`, connectErr.code, connectErr.metadata, [], connectErr.cause);
        withId.details.push(...connectErr.details);
        connectErr = withId;
      }
      connectErr.metadata.set(REQUEST_ID_HEADER, requestId);
      return connectErr;
    };
    try {
      const response = await next(req);
      response.header.set(REQUEST_ID_HEADER, requestId);
      // A stream's handler runs as it is read: its failures are mapped here too.
      if (response.stream) return { ...response, message: passThrough(response.message, { mapError: mapped }) };
      return response;
    } catch (err: unknown) {
      throw mapped(err);
    }
  };
}
