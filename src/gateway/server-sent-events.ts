import { Code, ConnectError } from "@connectrpc/connect";
import type { universalResponseToNodeResponse } from "@connectrpc/connect-node";
import type { UniversalServerResponse } from "@connectrpc/connect/protocol";
import { codeFromString } from "@connectrpc/connect/protocol-connect";

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
const END_STREAM = 0b10;

/** One Connect streaming request message: a 5-byte envelope around the JSON. */
export function envelope(json: unknown): AsyncIterable<Uint8Array> {
  const payload = Buffer.from(JSON.stringify(json));
  const header = Buffer.alloc(5);
  header.writeUInt32BE(payload.length, 1);
  return (async function* () {
    yield Buffer.concat([header, payload]);
  })();
}

interface Envelope {
  endStream: boolean;
  text: string;
}

async function* envelopes(body: AsyncIterable<Uint8Array>): AsyncGenerator<Envelope> {
  let buffer = Buffer.alloc(0);
  for await (const chunk of body) {
    buffer = Buffer.concat([buffer, chunk]);
    while (buffer.length >= 5) {
      const length = buffer.readUInt32BE(1);
      if (buffer.length < 5 + length) break;
      yield { endStream: ((buffer[0] ?? 0) & END_STREAM) !== 0, text: buffer.subarray(5, 5 + length).toString("utf8") };
      buffer = buffer.subarray(5 + length);
    }
  }
}

interface EndStream {
  error?: { code?: string; message?: string };
}

/**
 * Turns a Connect JSON server stream into Server-Sent Events: one `status` event
 * per message (its `id` is the message's version), then `end`, or `error` with
 * the Connect error JSON. A failure before the first message is answered with
 * the HTTP status of its code instead, like any REST error.
 */
export async function sendServerSentEvents(response: UniversalServerResponse, res: NodeResponse, sendError: (err: ConnectError) => void): Promise<void> {
  if (!response.body || response.status !== 200) throw new ConnectError(`stream failed with HTTP ${response.status}`, Code.Internal);
  let started = false;
  let dropped = false;
  let heartbeat: NodeJS.Timeout | undefined;
  try {
    for await (const e of envelopes(response.body)) {
      if (e.endStream) {
        const end = JSON.parse(e.text) as EndStream;
        if (end.error && !started) {
          sendError(new ConnectError(end.error.message ?? "", codeFromString(end.error.code ?? "") ?? Code.Unknown));
          return;
        }
        if (!started) start();
        send(end.error ? `event: error\ndata: ${JSON.stringify(end.error)}\n\n` : "event: end\ndata: {}\n\n");
        break;
      }
      if (!started) start();
      const version = (JSON.parse(e.text) as { version?: string }).version ?? "";
      // Leaving the loop ends the stream (and its watcher) for a client that does not read.
      if (!send(`id: ${version}\nevent: status\ndata: ${e.text}\n\n`)) break;
    }
  } finally {
    clearInterval(heartbeat);
    if (started && !dropped) res.end();
  }

  function start(): void {
    started = true;
    res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", "x-accel-buffering": "no" });
    heartbeat = setInterval(() => send(": keep-alive\n\n"), HEARTBEAT_MS);
    heartbeat.unref();
  }

  /** Writes, unless the client has left more than SSE_MAX_UNREAD_BYTES unread: then it is dropped (false). */
  function send(text: string): boolean {
    if (dropped) return false;
    res.write(text);
    if (res.writableLength <= SSE_MAX_UNREAD_BYTES) return true;
    // (node:http2's compatibility response has no `destroyed`: hence the flag.)
    dropped = true;
    res.destroy();
    return false;
  }
}
