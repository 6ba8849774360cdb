/** How a stream ended: all its messages read, an error, or its reader stopped early (`return()`). */
export type StreamEnd = { how: "done" } | { how: "failed"; error: unknown } | { how: "returned" };

export interface PassThroughHooks<T, U> {
  /** Each message on its way out. */
  map?: (message: T) => U;
  /** Each error on its way out (the error `onEnd` sees and the reader gets). */
  mapError?: (err: unknown) => unknown;
  /** Called once, when the stream ends. */
  onEnd?: (end: StreamEnd) => void;
}

/**
 * `messages` passed through, with hooks on their way out and at the end. The
 * interceptors of every open watch stream wrap its messages; as an async
 * generator each layer held a suspended frame per open stream and added
 * promises to every message. This is one small iterator per layer.
 */
export function passThrough<T, U = T>(messages: AsyncIterable<T>, hooks: PassThroughHooks<T, U>): AsyncIterable<U> {
  return {
    [Symbol.asyncIterator](): AsyncIterator<U> {
      const inner = messages[Symbol.asyncIterator]();
      let ended = false;
      const end = (how: StreamEnd): void => {
        if (ended) return;
        ended = true;
        hooks.onEnd?.(how);
      };
      const fail = (err: unknown): never => {
        const error = hooks.mapError ? hooks.mapError(err) : err;
        end({ how: "failed", error });
        throw error;
      };
      const { map } = hooks;
      return {
        next: () =>
          inner.next().then((result): IteratorResult<U> => {
            if (result.done) {
              end({ how: "done" });
              return { done: true, value: undefined };
            }
            return { done: false, value: map ? map(result.value) : (result.value as unknown as U) };
          }, fail),
        // A reader that stops early ends the inner stream too (its finally blocks run).
        return: () =>
          Promise.resolve(inner.return?.()).then((): IteratorResult<U> => {
            end({ how: "returned" });
            return { done: true, value: undefined };
          }, fail),
      };
    },
  };
}
