import * as http from "node:http";
import * as http2 from "node:http2";
import type { Socket } from "node:net";

/** Every cleartext HTTP/2 connection starts with this preface (RFC 9113, 3.4). */
const HTTP2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

type Handler = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => void;

export interface OnePortOptions {
  /** A connection that sends nothing for this long before its first request is closed. */
  firstByteTimeoutMs: number;
  /** Concurrent HTTP/2 streams one connection may open (clients queue the rest). */
  maxStreamsPerConnection: number;
  /** HTTP/1.1 requests must be complete within this (checked every second, not Node's 30). */
  requestTimeoutMs: number;
  /** Sees every HTTP/2 stream first and may serve it on the stream API (true); the rest reach `handler`. */
  takeStream?: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => boolean;
}

/**
 * One TCP listener for cleartext HTTP/2 (gRPC, gRPC-web, Connect) and HTTP/1.1
 * (gRPC-web, Connect, REST). Node cannot offer both on one plaintext port
 * (`allowHTTP1` needs TLS), so each new connection is read until it either
 * matches the HTTP/2 preface or does not, and is then handed to the right server.
 *
 * The returned HTTP/1 server is the listener: `listen`, `close` and its timeouts
 * work as usual; the HTTP/2 server only ever receives handed-over sockets.
 */
export function createOnePortServer(handler: Handler, options: OnePortOptions): { http1: http.Server; http2: http2.Http2Server } {
  const h2 = http2.createServer(
    {
      // Watch streams are long-lived: a proxy may carry thousands of them on one
      // connection. nghttp2's default 10 MB per session refuses them (ENHANCE_YOUR_CALM).
      maxSessionMemory: 64,
      settings: { maxConcurrentStreams: options.maxStreamsPerConnection },
    },
    handler,
  );
  const h1 = http.createServer({ requestTimeout: options.requestTimeoutMs, connectionsCheckingInterval: Math.min(1000, options.requestTimeoutMs) }, handler);

  const { takeStream } = options;
  if (takeStream) {
    // node:http2 turns each stream into a request/response pair in its own
    // 'stream' listener; streams that are taken never get one.
    const toRequest = h2.listeners("stream");
    h2.removeAllListeners("stream");
    h2.on("stream", (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, ...rest: unknown[]) => {
      if (takeStream(stream, headers)) return;
      for (const listener of toRequest) listener.call(h2, stream, headers, ...rest);
    });
  }

  // Keep HTTP/1's own connection handling and put the sniffer in front of it.
  const http1Connection = h1.listeners("connection")[0] as ((socket: Socket) => void) | undefined;
  if (!http1Connection) throw new Error("http.Server has no connection listener");
  h1.removeAllListeners("connection");
  h1.on("connection", (socket: Socket) => {
    sniff(socket, options.firstByteTimeoutMs, (isHttp2) => {
      if (isHttp2) {
        h2.emit("connection", socket);
      } else {
        http1Connection.call(h1, socket);
      }
    });
  });
  return { http1: h1, http2: h2 };
}

function sniff(socket: Socket, timeoutMs: number, route: (isHttp2: boolean) => void): void {
  let seen = Buffer.alloc(0);
  const timer = setTimeout(() => socket.destroy(), timeoutMs);
  const done = (isHttp2: boolean): void => {
    clearTimeout(timer);
    socket.off("data", onData);
    socket.off("error", onError);
    socket.off("close", onClose);
    socket.off("end", onEnd);
    if (isHttp2) {
      // http.Server keeps sockets half-open, but HTTP/2 has no half-closed
      // connection: a peer's FIN ends the session. Without this the session
      // (its descriptor and connection slot) outlived every client that left
      // with a plain FIN, and a single process ran out of both.
      socket.once("end", () => socket.destroy());
      // The HTTP/2 session reads bytes already buffered on the socket first.
      socket.pause();
      socket.unshift(seen);
      route(true);
    } else {
      // Node's HTTP/1 parser reads the socket's handle directly and would miss
      // unshifted bytes, so they are fed to its data listener instead.
      route(false);
      socket.emit("data", seen);
    }
  };
  const onData = (chunk: Buffer): void => {
    seen = Buffer.concat([seen, chunk]);
    const n = Math.min(seen.length, HTTP2_PREFACE.length);
    if (!seen.subarray(0, n).equals(HTTP2_PREFACE.subarray(0, n))) done(false);
    else if (seen.length >= HTTP2_PREFACE.length) done(true);
  };
  const onError = (): void => {
    socket.destroy();
  };
  const onClose = (): void => clearTimeout(timer);
  // http.Server keeps sockets half-open: a client that leaves before its first
  // byte must be closed here, or it holds a connection slot until the timeout.
  const onEnd = (): void => {
    socket.destroy();
  };
  socket.on("data", onData);
  socket.on("error", onError);
  socket.on("close", onClose);
  socket.on("end", onEnd);
}
