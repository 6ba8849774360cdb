import { Code, ConnectError, type StreamResponse, type UnaryResponse } from "@connectrpc/connect";
import { passThrough, type StreamEnd } from "../rpc/stream-end.js";

type Response = UnaryResponse | StreamResponse;

/**
 * Calls `done` once when the call ends: a unary call when its answer is back, a
 * stream when it ends. `done` gets the error it ended with, or undefined. A
 * handler may end quietly when its call is aborted (the client left, or the
 * deadline passed): that counts as the abort's error, not as a success.
 * Shared by the metrics and the tracing interceptors.
 */
export async function whenCallEnds(req: { signal: AbortSignal }, call: () => Promise<Response>, done: (err: unknown) => void): Promise<Response> {
  let response: Response;
  try {
    response = await call();
  } catch (err: unknown) {
    done(err);
    throw err;
  }
  if (!response.stream) {
    done(undefined);
    return response;
  }
  const onEnd = (end: StreamEnd): void => {
    if (end.how === "failed") return done(end.error);
    if (end.how === "returned") return done(new ConnectError("the client went away", Code.Canceled));
    done(req.signal.aborted ? (req.signal.reason instanceof ConnectError ? req.signal.reason : new ConnectError("the call was aborted", Code.Canceled)) : undefined);
  };
  return { ...response, message: passThrough(response.message, { onEnd }) };
}
