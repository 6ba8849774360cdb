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

/** Maps every handler failure with toConnectError, logging the ones that are bugs. */
export function errorInterceptor(log: Logger): Interceptor {
  return (next) => async (req) => {
    try {
      return await next(req);
    } catch (err: unknown) {
      const connectErr = toConnectError(err);
      if (connectErr.code === Code.Internal) {
        log.error({ err: connectErr.cause ?? err, rpc: req.method.name }, "rpc failed");
      } else if (connectErr.code === Code.Unavailable) {
        log.debug({ rpc: req.method.name, reason: connectErr.rawMessage }, "rpc unavailable");
      }
      throw connectErr;
    }
  };
}
