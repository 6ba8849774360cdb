import { ReplyError } from "ioredis";

/** Redis could not answer: down, hung past the timeout, loading, failing over. */
export class RedisUnavailableError extends Error {
  override readonly name = "RedisUnavailableError";
}

// Replies that mean "not now" rather than "your command is wrong".
// MOVED and ASK reach us only when a Cluster could not follow them (mid-failover).
const TRANSIENT_REPLIES = ["LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "READONLY", "OOM", "NOREPLICAS", "MOVED", "ASK"];

/**
 * Runs one Redis call and classifies its failure: a transient Redis state or a
 * broken/timed-out connection becomes RedisUnavailableError; any other reply
 * error (a script bug) is rethrown as it is.
 */
export async function callRedis<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err: unknown) {
    const message = err instanceof Error ? err.message : String(err);
    if (err instanceof ReplyError && !TRANSIENT_REPLIES.some((prefix) => message.startsWith(prefix))) {
      throw err;
    }
    // The client library's own words (a socket state, an option name) stay in the cause, for the log.
    throw new RedisUnavailableError("redis is unavailable", { cause: err });
  }
}
