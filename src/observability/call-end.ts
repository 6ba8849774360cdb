import { Code, ConnectError, type StreamResponse, type UnaryResponse } from "@connectrpc/connect";
import { passThrough, type StreamEnd } from "../rpc/stream-end.js";
import { signalsOf } from "../rpc/unary-calls.js";

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
  // The signal's source, not the request: an open stream keeps `onEnd`, and would keep the request (headers and
  // all); nor the signal itself, which a pushed stream never needs (signalsOf makes none).
  const signals = signalsOf(req);
  const onEnd = (end: StreamEnd): void => {
    if (end.how === "failed") return done(end.error);
    // Stopped by its transport with why (the client left, the deadline passed), or by its reader.
    if (end.how === "returned") return done(end.reason instanceof ConnectError ? end.reason : new ConnectError("the client went away", Code.Canceled));
    const signal = signals.signal();
    done(signal.aborted ? (signal.reason instanceof ConnectError ? signal.reason : new ConnectError("the call was aborted", Code.Canceled)) : undefined);
  };
  return { ...response, message: passThrough(response.message, { onEnd }) };
}
