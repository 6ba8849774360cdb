/** Where a pushed stream's messages go as they come, then its end or its error. */
export interface StreamSink<T> {
  message(message: T): void;
  end(): void;
  fail(error: unknown): void;
}

/**
 * A stream that can also push its messages to a sink as they come: while it
 * waits, no layer between it and its writer holds a suspended frame or a
 * pending promise, and a message is not passed from promise to promise through
 * every layer. The
 * writers of the fast paths take it (writeStream); anyone may still read it
 * as an async iterable. Like an iterator, it is used once: pushed or read.
 */
export interface PushStream<T> extends AsyncIterable<T> {
  /** Starts pushing to `sink`. */
  push(sink: StreamSink<T>): void;
  /** Stops early, as `return()` does for a reader: the sink is told nothing more. `reason`: why (the client left, its deadline passed), if known. */
  stop(reason?: unknown): void;
}

export function isPushStream<T>(messages: AsyncIterable<T>): messages is PushStream<T> {
  const stream = messages as Partial<PushStream<T>>;
  return typeof stream.push === "function" && typeof stream.stop === "function";
}
