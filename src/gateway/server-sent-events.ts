import type { JsonWriteOptions } from "@bufbuild/protobuf";
import type { ConnectError } from "@connectrpc/connect";
import type { universalResponseToNodeResponse } from "@connectrpc/connect-node";
import { errorToJson } from "@connectrpc/connect/protocol-connect";
import { toConnectError } from "../rpc/errors.js";
import { writeStream, type StreamEnd, type StreamWriter } from "../rpc/stream-end.js";
import { drained, headerRecord, notRead, writeOrDrop, type ResponseSignals } from "../server/http-body.js";

type NodeResponse = Parameters<typeof universalResponseToNodeResponse>[1];

/** Comment lines keep idle connections (and the proxies in between) open. */
const HEARTBEAT_MS = 15_000;

export interface SseOptions {
  /** A message as the data of its event. */
  toJson: (message: object) => string;
  /** For the error event's details, as the messages are written. */
  jsonOptions: Partial<JsonWriteOptions>;
  /** The call's signals: they end the stream when the client leaves. */
  signals: ResponseSignals;
  /** The call's response headers (x-request-id), sent with the answer's. */
  header: Headers;
}

/** The headers of every Server-Sent Events answer (a HEAD on a stream's route gets them too). */
export const SSE_HEADERS = { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", "x-accel-buffering": "no" };

/**
 * Sends a server stream as Server-Sent Events: one `status` event per message
 * (its `id` is the message's version, its data the message's JSON), then `end`,
 * or `error` with the Connect error JSON. A failure before the first message is
 * answered with the HTTP status of its code instead (`sendError`), like any REST
 * error. Returns at once: the stream's writer (an object, not a waiting frame
 * and its closures: it is what an open watch holds here) ends the answer.
 */
export function sendServerSentEvents(messages: AsyncIterable<object>, how: SseOptions, res: NodeResponse, sendError: (err: ConnectError) => void): void {
  // Pushed where the handler can (WatchStatus): each event is written as its message comes,
  // and a client that leaves stops the stream.
  how.signals.follow(writeStream(messages, new SseStream(how, res, sendError)));
}

class SseStream implements StreamWriter<object> {
  private readonly toJson: (message: object) => string;
  private readonly jsonOptions: Partial<JsonWriteOptions>;
  private readonly signals: ResponseSignals;
  /** The call's headers, until they are written. */
  private header: Headers | undefined;
  private started = false;
  private dropped = false;
  /** The last write filled the response's buffer: a read stream waits for it to drain. */
  private full = false;
  private heartbeat: NodeJS.Timeout | undefined;

  constructor(
    how: SseOptions,
    private readonly res: NodeResponse,
    private readonly sendError: (err: ConnectError) => void,
  ) {
    ({ toJson: this.toJson, jsonOptions: this.jsonOptions, signals: this.signals, header: this.header } = how);
  }

  write(message: object): boolean {
    // (serialised before the answer starts: a message JSON cannot hold fails as an error answer)
    const data = this.toJson(message);
    if (!this.started) this.start();
    const version: unknown = Reflect.get(message, "version");
    // Stopping ends the stream (and its watcher) for a client that left or does not read.
    return this.send(`id: ${typeof version === "bigint" || typeof version === "number" ? version : ""}\nevent: status\ndata: ${data}\n\n`);
  }

  ready(): Promise<void> | undefined {
    return this.full ? drained(this.res) : undefined;
  }

  close(end: StreamEnd): void {
    try {
      if (end.how === "failed") {
        const error = toConnectError(end.error);
        if (!this.started) return this.sendError(error);
        this.send(`event: error\ndata: ${JSON.stringify(errorToJson(error, this.jsonOptions))}\n\n`);
      } else {
        if (!this.started) this.start();
        this.send("event: end\ndata: {}\n\n");
      }
      if (!this.dropped && !this.gone()) this.res.end();
    } catch {
      // Nothing above this writer waits for it: a throw here would be an uncaught rejection.
      this.res.destroy();
    } finally {
      // After start(): a stream that ends before its first message starts and ends at once.
      clearInterval(this.heartbeat);
    }
  }

  /** The client left (the response closed; node:http2's compatibility response has no `destroyed`). */
  private gone(): boolean {
    return this.signals.closed;
  }

  private start(): void {
    this.started = true;
    const headers = headerRecord(this.header);
    this.header = undefined;
    this.res.writeHead(200, { ...headers, ...SSE_HEADERS });
    this.heartbeat = setInterval(() => this.send(": keep-alive\n\n"), HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  /** Writes, unless the client has left too much unread: then it is dropped (false). */
  private send(text: string): boolean {
    if (this.dropped || this.gone()) return false;
    const outcome = writeOrDrop(this.res, text);
    this.full = outcome === "full";
    if (outcome !== "dropped") return true;
    this.dropped = true;
    // Counted as a client that did not read, not one that left.
    this.signals.abort(notRead());
    return false;
  }
}
