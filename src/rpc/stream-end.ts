import { isPushStream, type PushStream, type StreamSink } from "../watch/push-stream.js";

/** How a stream ended: all its messages read, an error, or its reader stopped early (`return()`, or its writer's `stop`, with why if known). */
export type StreamEnd = { how: "done" } | { how: "failed"; error: unknown } | { how: "returned"; reason?: unknown };

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
 * promises to every message. This is one small object per layer, and where
 * `messages` can push, so can what it returns.
 */
export function passThrough<T, U = T>(messages: PushStream<T>, hooks: PassThroughHooks<T, U>): PushStream<U>;
export function passThrough<T, U = T>(messages: AsyncIterable<T>, hooks: PassThroughHooks<T, U>): AsyncIterable<U>;
export function passThrough<T, U = T>(messages: AsyncIterable<T>, hooks: PassThroughHooks<T, U>): AsyncIterable<U> {
  // Layers over a pushed stream not yet started share one object: an open watch holds one, not one per interceptor.
  if (messages instanceof PushedThrough) return (messages as PushedThrough<unknown, T>).and(hooks);
  if (isPushStream(messages)) return new PushedThrough<T, U>(messages, [hooks as Layer]);
  return { [Symbol.asyncIterator]: () => readThrough(messages, [hooks as Layer]) };
}

/** One layer's hooks, the types of its messages aside (a stack of layers maps from one type to the next). */
type Layer = PassThroughHooks<unknown, unknown>;

/** The layers' hooks in order, innermost first, as nested layers would call them. */
function mapThrough(layers: readonly Layer[], message: unknown): unknown {
  for (const { map } of layers) if (map) message = map(message);
  return message;
}

/** Calls each layer's onEnd, a failure with its error as the layers under it mapped it. */
function endThrough(layers: readonly Layer[], end: Exclude<StreamEnd, { how: "failed" }>): void {
  for (const { onEnd } of layers) onEnd?.(end);
}

/** endThrough for a failure: answers the error as every layer mapped it (what the reader gets). */
function failThrough(layers: readonly Layer[], error: unknown): unknown {
  for (const { mapError, onEnd } of layers) {
    if (mapError) error = mapError(error);
    onEnd?.({ how: "failed", error });
  }
  return error;
}

function mapErrorThrough(layers: readonly Layer[], error: unknown): unknown {
  for (const { mapError } of layers) if (mapError) error = mapError(error);
  return error;
}

function readThrough<T, U>(messages: AsyncIterable<T>, layers: readonly Layer[]): AsyncIterator<U> {
  const inner = messages[Symbol.asyncIterator]();
  let ended = false;
  const end = (how: "done" | "returned"): void => {
    if (ended) return;
    ended = true;
    endThrough(layers, { how });
  };
  const fail = (err: unknown): never => {
    if (ended) throw mapErrorThrough(layers, err);
    ended = true;
    throw failThrough(layers, err);
  };
  return {
    next: () =>
      inner.next().then((result): IteratorResult<U> => {
        if (result.done) {
          end("done");
          return { done: true, value: undefined };
        }
        return { done: false, value: mapThrough(layers, result.value) as U };
      }, fail),
    // A reader that stops early ends the inner stream too (its finally blocks run).
    return: () =>
      Promise.resolve(inner.return?.()).then((): IteratorResult<U> => {
        end("returned");
        return { done: true, value: undefined };
      }, fail),
  };
}

/**
 * Layers over a stream that pushes: the sink of the stream under them, and a
 * stream that pushes. (An object, not closures: every open watch holds one.)
 */
class PushedThrough<T, U> implements PushStream<U>, StreamSink<T> {
  private sink: StreamSink<U> | undefined;
  private ended = false;

  constructor(
    private readonly messages: PushStream<T>,
    private readonly layers: readonly Layer[],
  ) {}

  /** These layers and one more over them, in a new object that replaces this one (once pushed: a layer over it). */
  and<V>(hooks: PassThroughHooks<U, V>): PushedThrough<unknown, V> {
    if (this.sink || this.ended) return new PushedThrough<U, V>(this, [hooks as Layer]);
    return new PushedThrough<T, V>(this.messages, this.layers.concat(hooks as Layer));
  }

  [Symbol.asyncIterator](): AsyncIterator<U> {
    return readThrough(this.messages, this.layers);
  }

  push(sink: StreamSink<U>): void {
    this.sink = sink;
    this.messages.push(this);
  }

  stop(reason?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.messages.stop(reason);
    endThrough(this.layers, { how: "returned", reason });
  }

  message(message: T): void {
    if (!this.ended) this.sink?.message(mapThrough(this.layers, message) as U);
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    endThrough(this.layers, { how: "done" });
    this.sink?.end();
  }

  fail(err: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.sink?.fail(failThrough(this.layers, err));
  }
}

/** What writes a stream out (the fast paths' writers): each message, then once how the stream ended. */
export interface StreamWriter<T> {
  /** Writes one message; false stops the stream early (its reader left). */
  write(message: T): boolean;
  /**
   * What a read stream waits for before its next message, if anything: the
   * client has not yet taken what was written. (A pushed stream waits on
   * nothing: its writer drops a client that leaves too much unread.)
   */
  ready?(): Promise<void> | undefined;
  /** Once: "done" (all written), "failed" (the stream or `write` threw), or "returned" (`write` said false). */
  close(end: StreamEnd): void;
}

/**
 * Ends a stream that will not be read or pushed (its call ended first), so that
 * what it took is given back through its end: one that can push is stopped
 * with why, another returned.
 */
export function endUnread(messages: AsyncIterable<unknown>, reason?: unknown): void {
  if (isPushStream(messages)) return messages.stop(reason);
  void messages[Symbol.asyncIterator]().return?.()?.catch(() => undefined);
}

/** A pushed stream being written: its transport stops it when the call ends early. */
export interface WrittenStream {
  /** Stops the stream (its layers end as "returned" with `reason`) and closes its writer so. */
  stop(reason: unknown): void;
}

/**
 * Writes `messages` to `writer`: pushed where the stream can push, read
 * otherwise. Nothing waits while a pushed stream is open (no suspended frame,
 * no pending promise): its writer is all an open watch holds at this end.
 * Pushed: answers the stream, for the transport to stop when its client
 * leaves or its deadline passes (nothing else tells a pushed stream: it has
 * no reader to stop reading, and no signal of its own). Read: undefined (the
 * handler ends on its call's signal, and so does the read).
 */
export function writeStream<T>(messages: AsyncIterable<T>, writer: StreamWriter<T>): WrittenStream | undefined {
  if (!isPushStream(messages)) return void readInto(messages, writer);
  const pump = new Pump(messages, writer);
  try {
    messages.push(pump);
  } catch (err: unknown) {
    pump.fail(err);
  }
  return pump;
}

async function readInto<T>(messages: AsyncIterable<T>, writer: StreamWriter<T>): Promise<void> {
  let end: StreamEnd = { how: "done" };
  try {
    for await (const message of messages) {
      if (!writer.write(message)) {
        end = { how: "returned" };
        break;
      }
      const wait = writer.ready?.();
      if (wait) await wait;
    }
  } catch (err: unknown) {
    end = { how: "failed", error: err };
  }
  writer.close(end);
}

/** writeStream's sink on a pushed stream: its writer is closed once. */
class Pump<T> implements StreamSink<T>, WrittenStream {
  private over = false;

  constructor(
    private readonly messages: PushStream<T>,
    private readonly writer: StreamWriter<T>,
  ) {}

  message(message: T): void {
    if (this.over) return;
    let more: boolean;
    try {
      more = this.writer.write(message);
    } catch (err: unknown) {
      this.over = true;
      this.messages.stop();
      return this.writer.close({ how: "failed", error: err });
    }
    // (stopped while writing: the writer is closed already)
    if (!more && !this.over) this.stop(undefined);
  }

  end(): void {
    if (this.over) return;
    this.over = true;
    this.writer.close({ how: "done" });
  }

  fail(err: unknown): void {
    if (this.over) return;
    this.over = true;
    this.writer.close({ how: "failed", error: err });
  }

  stop(reason: unknown): void {
    if (this.over) return;
    this.over = true;
    this.messages.stop(reason);
    this.writer.close({ how: "returned", reason });
  }
}

/**
 * A stream made when it is first read or pushed: `open` runs then, and its
 * error is the stream's. A stream opened after its writer left is ended at once.
 */
export function deferred<T>(open: () => Promise<PushStream<T>>): PushStream<T> {
  return new Deferred(open);
}

class Deferred<T> implements PushStream<T> {
  /** Let go once called: it holds the request. */
  private open: (() => Promise<PushStream<T>>) | undefined;
  private inner: PushStream<T> | undefined;
  /** Stopped or returned before it opened. */
  private left = false;

  constructor(open: () => Promise<PushStream<T>>) {
    this.open = open;
  }

  private opened(): Promise<PushStream<T>> {
    const open = this.open;
    this.open = undefined;
    return open ? open() : Promise.reject(new Error("the stream was opened already"));
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    let inner: Promise<AsyncIterator<T>> | undefined;
    const iterator = (): Promise<AsyncIterator<T>> => (inner ??= this.opened().then((messages) => messages[Symbol.asyncIterator]()));
    return {
      next: () => (this.left && !inner ? Promise.resolve({ done: true, value: undefined }) : iterator().then((it) => it.next())),
      return: async (): Promise<IteratorResult<T>> => {
        this.left = true;
        if (inner) await (await inner).return?.();
        return { done: true, value: undefined };
      },
    };
  }

  push(sink: StreamSink<T>): void {
    this.opened().then(
      (messages) => {
        // Left while it opened: what opening took is given back through the stream's own end.
        if (this.left) return endUnread(messages);
        this.inner = messages;
        try {
          messages.push(sink);
        } catch (err: unknown) {
          messages.stop();
          sink.fail(err);
        }
      },
      (err: unknown) => {
        if (!this.left) sink.fail(err);
      },
    );
  }

  stop(reason?: unknown): void {
    this.left = true;
    this.inner?.stop(reason);
  }
}
