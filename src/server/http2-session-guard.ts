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
 */
export function guardSessions(server: http2.Http2Server, limits: SessionLimits): { retire(session: http2.ServerHttp2Session): void } {
  const retire = (session: http2.ServerHttp2Session): void => {
    if (session.closed || session.destroyed) return;
    // close() sends GOAWAY, lets open streams finish and then destroys the session.
    session.close();
    destroyAfter(session, limits.goawayGraceMs);
  };

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

  return { retire };
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
