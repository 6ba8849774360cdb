import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

export interface StreamLimit {
  interceptor: Interceptor;
  /** Streams open now in this process. */
  open(): number;
}

/**
 * At most `max` streaming calls open in this process at once (watch streams,
 * Health.Watch, reflection); past it RESOURCE_EXHAUSTED at once. Each open
 * stream costs heap (README: MAX_STREAMS), and without a bound a client could
 * open streams until the process died of heap exhaustion.
 */
export function streamLimit(max: number): StreamLimit {
  let open = 0;
  const interceptor: Interceptor = (next) => async (req) => {
    if (!req.stream) return next(req);
    if (open >= max) throw new ConnectError(`the server holds ${max} open streams, its limit: retry later`, Code.ResourceExhausted);
    open++;
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      open--;
      req.signal.removeEventListener("abort", release);
    };
    // A client that leaves ends the call's signal, whether or not the messages are read again.
    req.signal.addEventListener("abort", release, { once: true });
    try {
      const response = await next(req);
      if (!response.stream) return response;
      return { ...response, message: releasing(response.message, release) };
    } catch (err: unknown) {
      release();
      throw err;
    }
  };
  return { interceptor, open: () => open };
}

async function* releasing<T>(messages: AsyncIterable<T>, release: () => void): AsyncGenerator<T> {
  try {
    yield* messages;
  } finally {
    release();
  }
}
