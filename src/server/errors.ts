import { randomUUID } from "node:crypto";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";
import { RedisUnavailableError } from "../redis/redis-errors.js";

/**
 * The one place where failures become RPC errors. Deliberate errors are already
 * ConnectErrors; Redis being unreachable is Unavailable (retryable); anything
 * else is a bug and answers Internal without leaking its message.
 */
export function toConnectError(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  if (err instanceof RedisUnavailableError) return new ConnectError(err.message, Code.Unavailable, undefined, undefined, err);
  return new ConnectError("internal error", Code.Internal, undefined, undefined, err);
}

/** The header that carries a request's id, in and out. */
export const REQUEST_ID_HEADER = "x-request-id";

// A caller's own id is kept when it is plain; anything else is replaced.
const USABLE_REQUEST_ID = /^[\w.:-]{1,128}$/;

/**
 * Gives every call a request id (the caller's x-request-id, or a new one),
 * answers it in the x-request-id header or error metadata, and maps every
 * failure with toConnectError, logging (with the id) the ones that are bugs.
 */
export function errorInterceptor(log: Logger): Interceptor {
  return (next) => async (req) => {
    const given = req.header.get(REQUEST_ID_HEADER);
    const requestId = given !== null && USABLE_REQUEST_ID.test(given) ? given : randomUUID();
    const mapped = (err: unknown): ConnectError => {
      let connectErr = toConnectError(err);
      if (connectErr.code === Code.Internal || connectErr.code === Code.Unavailable) {
        const cause = connectErr.cause ?? err;
        if (connectErr.code === Code.Internal) log.error({ err: cause, rpc: req.method.name, requestId }, "rpc failed");
        else log.debug({ rpc: req.method.name, requestId, reason: connectErr.rawMessage, cause: cause instanceof Error && cause.cause instanceof Error ? cause.cause.message : undefined }, "rpc unavailable");
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
      if (response.stream) return { ...response, message: mapErrors(response.message, mapped) };
      return response;
    } catch (err: unknown) {
      throw mapped(err);
    }
  };
}

async function* mapErrors<T>(messages: AsyncIterable<T>, mapped: (err: unknown) => ConnectError): AsyncGenerator<T> {
  try {
    yield* messages;
  } catch (err: unknown) {
    throw mapped(err);
  }
}
