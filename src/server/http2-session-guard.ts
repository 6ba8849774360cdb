import * as http2 from "node:http2";

export interface SessionLimits {
  /** A session with no open stream for this long is sent GOAWAY and closed. */
  idleTimeoutMs: number;
  /** A stream's request body must be complete this long after its headers; else the stream is reset. */
  requestTimeoutMs: number;
  /** A session told to go away (GOAWAY, either side) is destroyed this long after, whatever it still holds. */
  goawayGraceMs: number;
  /** Every session is sent a PING this often... */
  keepaliveMs: number;
  /** ...and destroyed when the answer does not come within this. */
  pingTimeoutMs: number;
  /** HTTP/2 streams open at once in this process, unary calls included; more are refused (REFUSED_STREAM, safe to retry). */
  maxOpenStreams: number;
}

export interface SessionGuard {
  /** Sends GOAWAY, lets the open streams finish, destroys the session after the grace period. */
  retire(session: http2.ServerHttp2Session): void;
  /** Counts a new stream, or refuses it (false) when the process holds maxOpenStreams. */
  admit(stream: http2.ServerHttp2Stream): boolean;
}

/**
 * Every HTTP/2 session ends, whatever the peer does: when the peer sends
 * GOAWAY (after a grace period for its last streams), when it has had no open
 * stream for `idleTimeoutMs` (open watch streams keep it alive), and a stream
 * whose request body stalls is reset after `requestTimeoutMs`. Without this,
 * a client that opens a connection and never uses it, or sends half a body,
 * holds a descriptor and a connection slot for ever. A PING every `keepaliveMs`
 * finds the sessions that can no longer answer: a peer that vanished without a
 * FIN, or a session nghttp2 ended by itself after a protocol error (it sends
 * GOAWAY and stops reading, node is not told, and a stream left open kept the
 * session, its descriptor and its slot for good). (A peer's FIN is handled
 * where the connection is handed to HTTP/2: see one-port.ts.)
 *
 * A client that never reads (a flow-control window of 0) leaves every answer
 * buffered in the process: the streams of the process are bounded
 * (`maxOpenStreams`), and a stream whose output has waited, unread, for
 * `requestTimeoutMs` is cut. Before this, 70,000 unread GET /health answers
 * took a process with a 384 MB heap down.
 */
export function guardSessions(server: http2.Http2Server, limits: SessionLimits): SessionGuard {
  const retire = (session: http2.ServerHttp2Session): void => {
    if (session.closed || session.destroyed) return;
    // close() sends GOAWAY, lets open streams finish and then destroys the session.
    session.close();
    destroyAfter(session, limits.goawayGraceMs);
  };

  const streams = new Map<http2.ServerHttp2Stream, { buffered: number; since: number }>();
  const admit = (stream: http2.ServerHttp2Stream): boolean => {
    // A stream this guard closes (refused, stalled, cut) reports it as an error; unheard, that would end the process.
    stream.on("error", ignore);
    if (streams.size >= limits.maxOpenStreams) {
      stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      return false;
    }
    streams.set(stream, { buffered: 0, since: Date.now() });
    stream.once("close", () => streams.delete(stream));
    return true;
  };
  // Once a second: a stream whose unsent output has not shrunk for requestTimeoutMs is not being read.
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const [stream, seen] of streams) {
      const buffered = stream.bufferSize;
      if (!(buffered > 0) || buffered < seen.buffered) {
        seen.buffered = buffered > 0 ? buffered : 0;
        seen.since = now;
      } else if (now - seen.since >= limits.requestTimeoutMs) {
        streams.delete(stream);
        if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
      } else {
        seen.buffered = buffered;
      }
    }
  }, 1000);
  sweep.unref();
  server.once("close", () => clearInterval(sweep));

  server.on("session", (session: http2.ServerHttp2Session) => {
    let open = 0;
    let idle: NodeJS.Timeout | undefined;
    const armIdle = (): void => {
      clearTimeout(idle);
      idle = setTimeout(() => retire(session), limits.idleTimeoutMs);
      idle.unref();
    };
    armIdle();
    session.on("stream", (stream: http2.ServerHttp2Stream) => {
      open++;
      clearTimeout(idle);
      const stalled = stream.endAfterHeaders ? undefined : setTimeout(() => cutIfStalled(stream), limits.requestTimeoutMs);
      stalled?.unref();
      // The body is complete: long-lived (watch) streams keep no timer.
      if (stalled) stream.once("end", () => clearTimeout(stalled));
      stream.once("close", () => {
        clearTimeout(stalled);
        open--;
        if (open === 0 && !session.closed) armIdle();
      });
    });
    // The peer said it is going away: its last streams get the grace period, then the session ends.
    session.once("goaway", () => destroyAfter(session, limits.goawayGraceMs));
    const keepalive = setInterval(() => checkAlive(session, limits.pingTimeoutMs), limits.keepaliveMs);
    keepalive.unref();
    session.once("close", () => {
      clearTimeout(idle);
      clearInterval(keepalive);
    });
  });

  return { retire, admit };
}

function destroyAfter(session: http2.ServerHttp2Session, ms: number): void {
  if (session.destroyed) return;
  const timer = setTimeout(() => session.destroy(), ms);
  timer.unref();
  session.once("close", () => clearTimeout(timer));
}

/** Sends a PING; a session that does not answer within `timeoutMs` (or cannot send one) is destroyed. */
function checkAlive(session: http2.ServerHttp2Session, timeoutMs: number): void {
  if (session.destroyed) return;
  const dead = setTimeout(() => session.destroy(), timeoutMs);
  dead.unref();
  let sent = false;
  try {
    sent = session.ping((err) => {
      if (!err) clearTimeout(dead);
    });
  } catch {
    // Too many PINGs unanswered: the session is as good as dead.
  }
  if (!sent) {
    clearTimeout(dead);
    session.destroy();
  }
}

function cutIfStalled(stream: http2.ServerHttp2Stream): void {
  if (stream.destroyed || stream.closed || stream.state.remoteClose) return;
  stream.close(http2.constants.NGHTTP2_CANCEL);
}

function ignore(): void {}
