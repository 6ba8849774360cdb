import { Code, ConnectError } from "@connectrpc/connect";

/**
 * The negative codes the Lua scripts answer with, mapped once to RPC errors.
 * `detail` is the number a script sends after the code (a time or a position).
 */
export function scriptError(code: number, eventId: string, detail: number | undefined): ConnectError {
  const at = (ms: number | undefined): string => new Date(ms ?? 0).toISOString();
  switch (code) {
    case -1:
      return new ConnectError(`event ${eventId} does not exist`, Code.NotFound);
    case -2:
      return new ConnectError(`event ${eventId} is not open yet: it opens at ${at(detail)}`, Code.FailedPrecondition);
    case -3:
      return new ConnectError(`event ${eventId} is paused: try again when it resumes`, Code.FailedPrecondition);
    case -4:
      return new ConnectError(`event ${eventId} closed at ${at(detail)}`, Code.FailedPrecondition);
    case -5:
      return new ConnectError("the ticket belongs to an earlier entry of this user", Code.PermissionDenied);
    case -6:
      return new ConnectError(`the user is still queued (position ${detail ?? 0}): there is no seat to confirm`, Code.FailedPrecondition);
    case -7:
      return new ConnectError("the user cancelled: there is no seat to confirm", Code.FailedPrecondition);
    case -8:
      return new ConnectError("the hold expired: the seat went to the next in line", Code.FailedPrecondition);
    case -9:
      return new ConnectError(`the user has no entry in event ${eventId}`, Code.NotFound);
    case -10:
      return new ConnectError(`event ${eventId} already exists`, Code.AlreadyExists);
    default:
      return new ConnectError(`script answered unknown code ${code}`, Code.Internal);
  }
}
