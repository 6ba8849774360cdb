import type { JsonWriteOptions } from "@bufbuild/protobuf";
import type { ConnectError } from "@connectrpc/connect";
import type { universalResponseToNodeResponse } from "@connectrpc/connect-node";
import { errorToJson } from "@connectrpc/connect/protocol-connect";
import { toConnectError } from "../rpc/errors.js";
import { forEachMessage } from "../rpc/stream-end.js";

type NodeResponse = Parameters<typeof universalResponseToNodeResponse>[1];

/** Comment lines keep idle connections (and the proxies in between) open. */
const HEARTBEAT_MS = 15_000;
/**
 * Bytes a client may leave unread before it is dropped. A client that stops
 * reading (or a bot that never does) would otherwise make the server buffer
 * every later update for it; one that comes back reconnects and reads its
 * state afresh.
 */
export const SSE_MAX_UNREAD_BYTES = 64 * 1024;

export interface SseOptions {
  /** A message as the data of its event. */
  toJson: (message: object) => string;
  /** For the error event's details, as the messages are written. */
  jsonOptions: Partial<JsonWriteOptions>;
  /** The call's signal: aborted when the client leaves. */
  signal: AbortSignal;
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
 * error.
 */
export async function sendServerSentEvents(messages: AsyncIterable<object>, how: SseOptions, res: NodeResponse, sendError: (err: ConnectError) => void): Promise<void> {
  let started = false;
  let dropped = false;
  // The client left (the call's signal, aborted on the response's close; node:http2's
  // compatibility response has no `destroyed`).
  const gone = (): boolean => how.signal.aborted;
  let heartbeat: NodeJS.Timeout | undefined;
  try {
    // Pushed where the handler can (WatchStatus): each event is written as its message comes.
    await forEachMessage(messages, (message) => {
      // (serialised before the answer starts: a message JSON cannot hold fails as an error answer)
      const data = how.toJson(message);
      if (!started) start();
      const version: unknown = Reflect.get(message, "version");
      // Stopping ends the stream (and its watcher) for a client that left or does not read.
      return send(`id: ${typeof version === "bigint" || typeof version === "number" ? version : ""}\nevent: status\ndata: ${data}\n\n`);
    });
    if (!started) start();
    send("event: end\ndata: {}\n\n");
  } catch (err: unknown) {
    const error = toConnectError(err);
    if (!started) return sendError(error);
    send(`event: error\ndata: ${JSON.stringify(errorToJson(error, how.jsonOptions))}\n\n`);
  } finally {
    clearInterval(heartbeat);
    if (started && !dropped && !gone()) res.end();
  }

  function start(): void {
    started = true;
    const headers: Record<string, string> = {};
    for (const [name, value] of how.header) headers[name] = value;
    res.writeHead(200, { ...headers, ...SSE_HEADERS });
    heartbeat = setInterval(() => send(": keep-alive\n\n"), HEARTBEAT_MS);
    heartbeat.unref();
  }

  /** Writes, unless the client has left more than SSE_MAX_UNREAD_BYTES unread: then it is dropped (false). */
  function send(text: string): boolean {
    if (dropped || gone()) return false;
    res.write(text);
    if (res.writableLength <= SSE_MAX_UNREAD_BYTES) return true;
    dropped = true;
    res.destroy();
    return false;
  }
}
