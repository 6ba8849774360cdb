import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { passThrough } from "./stream-end.js";
import { SignalledRequest } from "./unary-calls.js";

export interface StreamLimit {
  interceptor: Interceptor;
  /** Streams open now in this process. */
  open(): number;
}

/** Streams no credential stands behind (Health.Watch, reflection) may take this many places at most. */
export const MAX_ANONYMOUS_STREAMS = 100;

/**
 * At most `max` streaming calls open in this process at once (watch streams,
 * Health.Watch, reflection); past it RESOURCE_EXHAUSTED at once. Each open
 * stream costs heap (README: MAX_STREAMS), and without a bound a client could
 * open streams until the process died of heap exhaustion. Of those, the
 * streams of `anonymous` methods, which anyone can open without a ticket or an
 * admin credential, may hold MAX_ANONYMOUS_STREAMS: one client holding every
 * place with Health.Watch would otherwise lock the travellers' WatchStatus out.
 */
export function streamLimit(max: number, anonymous: ReadonlySet<DescMethod>): StreamLimit {
  let open = 0;
  let openAnonymous = 0;
  const interceptor: Interceptor = (next) => async (req) => {
    if (!req.stream) return next(req);
    const isAnonymous = anonymous.has(req.method);
    if (open >= max) throw new ConnectError(`the server holds ${max} open streams, its limit: retry later`, Code.ResourceExhausted);
    if (isAnonymous && openAnonymous >= MAX_ANONYMOUS_STREAMS) {
      throw new ConnectError(`the server holds ${MAX_ANONYMOUS_STREAMS} ${req.method.parent.name} streams, its limit: retry later`, Code.ResourceExhausted);
    }
    open++;
    if (isAnonymous) openAnonymous++;
    let released = false;
    // A fast path's stream ends (`onEnd` below) when its client leaves: pushed, its writer stops it;
    // read, its handler ends on the call's signal and the read with it. connect-node may stop
    // reading a stream whose client left: there the call's signal gives the place back.
    // (The signal, not the request: an open stream keeps `release`, and would keep the request, headers and all.)
    const signal = req instanceof SignalledRequest ? undefined : req.signal;
    const release = (): void => {
      if (released) return;
      released = true;
      open--;
      if (isAnonymous) openAnonymous--;
      signal?.removeEventListener("abort", release);
    };
    signal?.addEventListener("abort", release, { once: true });
    try {
      const response = await next(req);
      if (!response.stream) return response;
      return { ...response, message: passThrough(response.message, { onEnd: release }) };
    } catch (err: unknown) {
      release();
      throw err;
    }
  };
  return { interceptor, open: () => open };
}
