import { constants as http2Constants } from "node:http2";
import type * as http2 from "node:http2";
import { toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { peerContext } from "../rpc/caller.js";
import { toConnectError } from "../rpc/errors.js";
import { endUnread, writeStream, type StreamEnd, type StreamWriter, type WrittenStream } from "../rpc/stream-end.js";
import { createServerStreamCalls, ServerStreamRequest, type ServerStreamTarget } from "../rpc/stream-calls.js";
import { CallRequest, createUnaryCalls, deadlineKey, type SignalSource, type UnaryTarget } from "../rpc/unary-calls.js";
import { decodeRequestFrame, frameOf, grpcDeadline, headerValue, requestHeader } from "./grpc-framing.js";
import { serverBusy, type BodyBudget, type BodyHolder } from "./body-budget.js";
import { drained, MAX_UNREAD_BYTES, notRead } from "./http-body.js";
import type { LeanPathOptions } from "./lean-path-options.js";
import type { Refused } from "../rpc/rpc-surface.js";


/** Takes an HTTP/2 stream it serves (true) or leaves it alone (false). */
export type StreamTaker = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => boolean;

const GRPC_CONTENT_TYPES = new Set(["application/grpc", "application/grpc+proto"]);

/**
 * A lean path for the hottest case: unary and server-streaming gRPC over
 * HTTP/2, binary protobuf, uncompressed, straight on node:http2's stream API. It runs the same
 * interceptors and handlers as Connect but skips Connect's general machinery and
 * node's compatibility layer (request/response stream wrappers, async
 * iterables, an AbortController and four Headers per call), which cost more
 * than the call's own work. Anything else (client or bidi streaming, gRPC-web,
 * Connect, compressed requests, browser origins) answers `false` and goes to
 * connect-node untouched.
 *
 * The protocol stays whole: grpc-timeout deadlines (DEADLINE_EXCEEDED),
 * trailers-only error responses with grpc-status, grpc-message and
 * grpc-status-details-bin (Connect's own encoder), response headers and
 * trailers set by handlers, client cancellation (the handler's signal aborts),
 * and the 64 KiB limit (RESOURCE_EXHAUSTED).
 */
export function createLeanGrpc(options: LeanPathOptions): StreamTaker {
  const targets = new Map<string, Target>();
  for (const target of createUnaryCalls(options.services, options.interceptors, "grpc").values()) {
    targets.set(`/${target.service.typeName}/${target.method.name}`, { kind: "unary", ...target });
  }
  for (const target of createServerStreamCalls(options.services, options.interceptors).values()) {
    targets.set(`/${target.service.typeName}/${target.method.name}`, { kind: "server_streaming", ...target });
  }

  return (stream, headers) => {
    if (headers[":method"] !== "POST" || !GRPC_CONTENT_TYPES.has(headers["content-type"] ?? "")) return false;
    const encoding = headers["grpc-encoding"];
    if (encoding !== undefined && encoding !== "identity") return false; // compressed: Connect decompresses
    if (headers.origin !== undefined) return false; // a browser: CORS is answered on the general path
    const target = targets.get(headers[":path"] ?? "");
    if (!target) return false;
    new LeanCall(stream, headers, target, options.maxRequestBytes, options.bodyBudget, options.refused).start();
    return true;
  };
}

type Target = ({ kind: "unary" } & UnaryTarget) | ({ kind: "server_streaming" } & ServerStreamTarget);

/**
 * One call on one stream: read the request message, run the chain, answer
 * once (unary) or with each message the handler yields (server streaming).
 */
class LeanCall implements SignalSource, BodyHolder {
  /** Answered, failed or left: nothing more is written. */
  finished = false;
  /** Set when the call failed after the response headers went out: it ends with these trailers. */
  private failure: ConnectError | undefined;
  private deadline: NodeJS.Timeout | undefined;
  private controller: AbortController | undefined;
  /** Why the call finished (for a signal made afterwards: a handler that asks late still sees the deadline). */
  private endReason = "";
  private endCode = Code.Canceled;
  private chunks: Buffer[] = [];
  private size = 0;
  /** A pushed server stream being written: stopped when the call ends early. */
  private written: WrittenStream | undefined;
  /** The interceptors have the call: they count how it ends. */
  private called = false;

  constructor(
    private readonly stream: http2.ServerHttp2Stream,
    private readonly headers: http2.IncomingHttpHeaders,
    private readonly target: Target,
    private readonly maxBytes: number,
    private readonly budget: BodyBudget,
    private readonly refused: Refused | undefined,
  ) {}

  start(): void {
    const { stream } = this;
    // Stream errors also reach the session; without a listener they would throw.
    stream.on("error", ignore);
    // A stream that closes before the answer was cancelled by the client (or its connection died).
    stream.once("close", () => this.finish("the client cancelled"));
    const timeout = grpcDeadline(headerValue(this.headers["grpc-timeout"]));
    if (timeout.error) return this.fail(timeout.error);
    let deadlineAt: number | undefined;
    if (timeout.timeoutMs !== undefined) {
      deadlineAt = Date.now() + timeout.timeoutMs;
      this.deadline = setTimeout(() => this.fail(new ConnectError("the deadline was exceeded", Code.DeadlineExceeded)), timeout.timeoutMs);
    }
    if (Number(this.headers["content-length"] ?? 0) > this.maxBytes + 5) return this.fail(this.tooLarge());
    stream.on("data", (chunk: Buffer) => {
      if (this.finished) return;
      this.size += chunk.length;
      if (this.size > this.maxBytes + 5) return this.fail(this.tooLarge());
      // This call's share of the budget is given back once its body is decoded or the call ends.
      if (!this.budget.take(this, chunk.length)) return this.fail(serverBusy());
      this.chunks.push(chunk);
    });
    // run() never throws (fail() answers what it can); the catch is a last guard against a crash.
    stream.once("end", () => void this.run(deadlineAt).catch(ignore));
  }

  private async run(deadlineAt: number | undefined): Promise<void> {
    if (this.finished) return;
    const { target, stream } = this;
    const { method } = target;
    let unread: AsyncIterable<unknown> | undefined;
    try {
      const frame = this.chunks.length === 1 ? (this.chunks[0] ?? Buffer.alloc(0)) : Buffer.concat(this.chunks);
      this.chunks = [];
      this.release();
      const message = decodeRequestFrame(method.input, frame, "gRPC");
      const contextValues = peerContext(stream.session?.socket?.remoteAddress).set(deadlineKey, deadlineAt);
      const path = this.headers[":path"] ?? "";
      this.called = true;
      if (target.kind === "unary") {
        const response = await target.call(new CallRequest(target.service, target.method, path, requestHeader(this.headers), contextValues, message, this));
        if (this.finished || stream.closed) return this.finish("the client cancelled");
        stream.respond(responseHeaders(response.header), { waitForTrailers: true });
        this.finish("the call is complete");
        const trailers = okTrailers(response.trailer);
        stream.once("wantTrailers", () => stream.sendTrailers(trailers));
        stream.end(frameOf(0, toBinary(method.output, response.message)));
        return;
      }
      const response = await target.call(new ServerStreamRequest(target.service, target.method, path, requestHeader(this.headers), contextValues, message, this));
      // Until it is read, a stream that will not be (its client left meanwhile, or answering failed)
      // is ended here: what it took (its place among the open streams) is given back through its end.
      unread = response.message;
      if (this.finished || stream.closed) {
        this.finish("the client cancelled");
        return endUnread(response.message, this.failure ?? new ConnectError(this.endReason, this.endCode));
      }
      unread = undefined;
      // From here the writer ends the call when the stream ends; nothing here waits for it.
      // A client that leaves, or a deadline that passes, stops a pushed stream (finish()).
      // The headers go with the first message: a stream that fails before one (its watch
      // refused) is answered trailers-only, as connect-node answers it, and a client's retry
      // policy may still retry it (gRFC A6: headers commit the call).
      this.written = writeStream(response.message, new GrpcStream(this, stream, target.method.output, response.header, response.trailer));
    } catch (err: unknown) {
      this.fail(err);
      if (unread) endUnread(unread, this.failure ?? toConnectError(err));
    }
  }

  /**
   * A server stream ended (its writer's close): the trailers with its status,
   * unless the client is gone; trailers-only for a failure before any message
   * (`header`: the handler's headers, when none went out yet).
   */
  endStream(end: StreamEnd, header: Headers | undefined, trailer: Headers): void {
    const { stream } = this;
    // Ended: nothing to stop any more (and no reason to build when the call finishes).
    this.written = undefined;
    if (end.how === "failed") this.failure ??= toConnectError(end.error);
    if (stream.destroyed || stream.closed) return this.finish("the client cancelled");
    this.finish("the call is complete");
    if (!stream.headersSent) {
      if (this.failure) return this.respondStatus(this.failure);
      stream.respond(responseHeaders(header ?? new Headers()), { waitForTrailers: true });
    }
    const trailers = this.failure ? Object.fromEntries(statusTrailers(this.failure)) : okTrailers(trailer);
    stream.once("wantTrailers", () => stream.sendTrailers(trailers));
    stream.end();
  }

  /** The client leaves too much of its stream unread: dropped (RST_STREAM ENHANCE_YOUR_CALM), counted RESOURCE_EXHAUSTED. */
  drop(): void {
    this.stream.close(http2Constants.NGHTTP2_ENHANCE_YOUR_CALM);
    const why = notRead();
    this.finish(why.rawMessage, why.code);
  }

  /** Ending the stream failed: reset it, and the call is over. */
  reset(): void {
    if (!this.stream.destroyed) this.stream.close(http2Constants.NGHTTP2_INTERNAL_ERROR);
    this.finish("the stream could not be ended", Code.Internal);
  }

  /** Answers trailers-only: the status travels in the only HEADERS frame. */
  private fail(err: unknown): void {
    if (this.finished) return;
    const error = toConnectError(err);
    if (!this.called) this.refused?.(this.target.method, error);
    // Mid-stream (headers sent): the stream's writer ends it with this status in its trailers.
    this.failure = error;
    this.finish(error.rawMessage, error.code);
    const { stream } = this;
    // A stream the client reset (RST_STREAM, even with NO_ERROR) is closed before it is destroyed: nothing can be sent.
    if (stream.destroyed || stream.closed || stream.headersSent) return;
    this.respondStatus(error);
  }

  /** Trailers-only: the error's status in the only HEADERS frame. */
  private respondStatus(error: ConnectError): void {
    const { stream } = this;
    const headers: http2.OutgoingHttpHeaders = { ":status": 200, "content-type": "application/grpc" };
    for (const [name, value] of statusTrailers(error)) headers[name] = value;
    stream.respond(headers, { endStream: true });
    // Whatever the client still sends is read and dropped.
    stream.resume();
  }

  private release(): void {
    this.budget.give(this);
  }

  /** The budget needs this unfinished body's bytes for newer ones: refused as a body that cannot fit is. */
  cut(): void {
    this.fail(serverBusy());
  }

  /** The call is over: stop the deadline, and abort the handler's signal if it was asked for. */
  private finish(reason: string, code = Code.Canceled): void {
    if (this.finished) return;
    this.finished = true;
    this.endReason = reason;
    this.endCode = code;
    this.chunks = [];
    this.release();
    clearTimeout(this.deadline);
    // An error is built only for a listener: it captures a stack, which costs more than the call's framing.
    if (this.controller || this.written) {
      const why = new ConnectError(reason, code);
      this.controller?.abort(why);
      try {
        this.written?.stop(why);
      } catch {
        // (its layers' end hooks: called from a stream event or a timer, a throw would be uncaught)
      }
    }
  }

  /** The handler's abort signal, made on first use: most calls never ask. */
  signal(): AbortSignal {
    this.controller ??= new AbortController();
    if (this.finished && !this.controller.signal.aborted) this.controller.abort(new ConnectError(this.endReason, this.endCode));
    return this.controller.signal;
  }

  private tooLarge(): ConnectError {
    return new ConnectError(`message is larger than ${this.maxBytes} bytes`, Code.ResourceExhausted);
  }
}

/** grpc-status, grpc-message and grpc-status-details-bin for an error (Connect's encoder, the message as the spec says). */
function statusTrailers(error: ConnectError): Headers {
  const trailers = setTrailerStatus(new Headers(), error);
  trailers.set("grpc-message", encodeGrpcMessage(error.rawMessage));
  return trailers;
}

/**
 * grpc-message as the gRPC spec (PROTOCOL-HTTP2.md) encodes it: UTF-8, with
 * only bytes outside 0x20-0x7E and "%" percent-encoded. Connect encodes it with
 * encodeURIComponent, and grpc-js, which decodes with decodeURI, then showed
 * "%3A" for every colon.
 */
export function encodeGrpcMessage(message: string): string {
  let out = "";
  for (const byte of Buffer.from(message, "utf8")) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

function responseHeaders(header: Headers): http2.OutgoingHttpHeaders {
  const headers: http2.OutgoingHttpHeaders = { ":status": 200, "content-type": "application/grpc" };
  for (const [name, value] of header) headers[name] = value;
  return headers;
}

function okTrailers(trailer: Headers): http2.OutgoingHttpHeaders {
  const trailers: http2.OutgoingHttpHeaders = { "grpc-status": "0" };
  for (const [name, value] of trailer) trailers[name] = value;
  return trailers;
}

/**
 * A server stream's messages as gRPC frames, each written as it comes. A pushed
 * stream's client that leaves more than MAX_UNREAD_BYTES unread is dropped, as
 * gRPC-web's and SSE's are: RST_STREAM with ENHANCE_YOUR_CALM, which gRPC
 * clients report as RESOURCE_EXHAUSTED. A read stream waits instead for the
 * client to take what was written (ready()). An object, not closures over the
 * call: it is what an open watch holds here.
 */
class GrpcStream implements StreamWriter<object> {
  /** The last write filled the stream's buffer: a read stream waits for it to drain. */
  private full = false;

  constructor(
    private readonly call: LeanCall,
    private readonly stream: http2.ServerHttp2Stream,
    private readonly output: DescMessage,
    /** The handler's headers, until they are sent (with the first message). */
    private header: Headers | undefined,
    private readonly trailer: Headers,
  ) {}

  write(message: object): boolean {
    const { stream } = this;
    if (this.call.finished || stream.destroyed || stream.closed) return false;
    if (stream.writableLength > MAX_UNREAD_BYTES) {
      this.call.drop();
      return false;
    }
    if (!stream.headersSent) {
      stream.respond(responseHeaders(this.header ?? new Headers()), { waitForTrailers: true });
      this.header = undefined;
    }
    this.full = !stream.write(frameOf(0, toBinary(this.output, message as MessageShape<DescMessage>)));
    return true;
  }

  ready(): Promise<void> | undefined {
    return this.full ? drained(this.stream) : undefined;
  }

  close(end: StreamEnd): void {
    try {
      this.call.endStream(end, this.header, this.trailer);
    } catch {
      // Nothing above this writer waits for it: a throw here would be an uncaught rejection.
      this.call.reset();
    }
  }
}

function ignore(): void {}
