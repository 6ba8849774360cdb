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
export async function whenCallEnds<R extends { signal: AbortSignal }>(req: R, call: (req: R) => Promise<Response>, done: (err: unknown) => void): Promise<Response> {
  let response: Response;
  try {
    // (`call` takes the request: a closure over it in the interceptor would share a scope with `done`, which an open stream keeps.)
    response = await call(req);
  } catch (err: unknown) {
    done(err);
    throw err;
  }
  if (!response.stream) {
    done(undefined);
    return response;
  }
  // The signal, not the request: an open stream keeps `onEnd`, and would keep the request (headers and all).
  const signal = req.signal;
  const onEnd = (end: StreamEnd): void => {
    if (end.how === "failed") return done(end.error);
    if (end.how === "returned") return done(new ConnectError("the client went away", Code.Canceled));
    done(signal.aborted ? (signal.reason instanceof ConnectError ? signal.reason : new ConnectError("the call was aborted", Code.Canceled)) : undefined);
  };
  return { ...response, message: passThrough(response.message, { onEnd }) };
}
