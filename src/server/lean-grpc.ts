import type * as http2 from "node:http2";
import { fromBinary, toBinary, type DescService, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { parseTimeout, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { peerContext } from "./caller.js";
import { toConnectError } from "./errors.js";
import { CallRequest, createUnaryCalls, deadlineKey, type SignalSource, type UnaryCall, type UnaryMethod, type UnaryTarget } from "./unary-calls.js";

export interface LeanGrpcOptions {
  services: readonly { service: DescService; impl: object }[];
  /** The same interceptors the Connect router runs. */
  interceptors: readonly Interceptor[];
  maxRequestBytes: number;
}

/** Takes an HTTP/2 stream it serves (true) or leaves it alone (false). */
export type StreamTaker = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => boolean;

const GRPC_CONTENT_TYPES = new Set(["application/grpc", "application/grpc+proto"]);
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A lean path for the hottest case: unary gRPC over HTTP/2, binary protobuf,
 * uncompressed, straight on node:http2's stream API. It runs the same
 * interceptors and handlers as Connect but skips Connect's general machinery and
 * node's compatibility layer (request/response stream wrappers, async
 * iterables, an AbortController and four Headers per call), which cost more
 * than the call's own work. Anything else (streaming, gRPC-web, Connect,
 * compressed requests, browser origins) answers `false` and goes to connect-node
 * untouched.
 *
 * The protocol stays whole: grpc-timeout deadlines (DEADLINE_EXCEEDED),
 * trailers-only error responses with grpc-status, grpc-message and
 * grpc-status-details-bin (Connect's own encoder), response headers and
 * trailers set by handlers, client cancellation (the handler's signal aborts),
 * and the 64 KiB limit (RESOURCE_EXHAUSTED).
 */
export function createLeanGrpc(options: LeanGrpcOptions): StreamTaker {
  const unary = new Map<string, UnaryTarget>();
  for (const target of createUnaryCalls(options.services, options.interceptors, "grpc").values()) {
    unary.set(`/${target.service.typeName}/${target.method.name}`, target);
  }

  return (stream, headers) => {
    if (headers[":method"] !== "POST" || !GRPC_CONTENT_TYPES.has(headers["content-type"] ?? "")) return false;
    const encoding = headers["grpc-encoding"];
    if (encoding !== undefined && encoding !== "identity") return false; // compressed: Connect decompresses
    if (headers.origin !== undefined) return false; // a browser: CORS is answered on the general path
    const target = unary.get(headers[":path"] ?? "");
    if (!target) return false;
    new LeanCall(stream, headers, target.service, target.method, target.call, options.maxRequestBytes).start();
    return true;
  };
}

/** One unary call on one stream: read the message, run the chain, answer once. */
class LeanCall implements SignalSource {
  private finished = false;
  private deadline: NodeJS.Timeout | undefined;
  private controller: AbortController | undefined;
  private chunks: Buffer[] = [];
  private size = 0;

  constructor(
    private readonly stream: http2.ServerHttp2Stream,
    private readonly headers: http2.IncomingHttpHeaders,
    private readonly service: DescService,
    private readonly method: UnaryMethod,
    private readonly call: UnaryCall,
    private readonly maxBytes: number,
  ) {}

  start(): void {
    const { stream } = this;
    // Stream errors also reach the session; without a listener they would throw.
    stream.on("error", ignore);
    // A stream that closes before the answer was cancelled by the client (or its connection died).
    stream.once("close", () => this.finish("the client cancelled"));
    const timeout = parseTimeout(headerValue(this.headers["grpc-timeout"]), Number.MAX_SAFE_INTEGER);
    if (timeout.error) return this.fail(timeout.error);
    let deadlineAt: number | undefined;
    // A timer cannot wait past 2^31-1 ms (Node would fire it at once); a deadline that far off is none.
    if (timeout.timeoutMs !== undefined && timeout.timeoutMs <= MAX_TIMER_MS) {
      deadlineAt = Date.now() + timeout.timeoutMs;
      this.deadline = setTimeout(() => this.fail(new ConnectError("the deadline was exceeded", Code.DeadlineExceeded)), timeout.timeoutMs);
    }
    if (Number(this.headers["content-length"] ?? 0) > this.maxBytes + 5) return this.fail(this.tooLarge());
    stream.on("data", (chunk: Buffer) => {
      if (this.finished) return;
      this.size += chunk.length;
      if (this.size > this.maxBytes + 5) return this.fail(this.tooLarge());
      this.chunks.push(chunk);
    });
    stream.once("end", () => void this.run(deadlineAt));
  }

  private async run(deadlineAt: number | undefined): Promise<void> {
    if (this.finished) return;
    const { method, stream } = this;
    try {
      const frame = this.chunks.length === 1 ? (this.chunks[0] ?? Buffer.alloc(0)) : Buffer.concat(this.chunks);
      this.chunks = [];
      if (frame.length < 5 || frame.readUInt32BE(1) !== frame.length - 5) {
        throw new ConnectError("the request is not exactly one gRPC message", Code.InvalidArgument);
      }
      if (((frame[0] ?? 0) & 1) === 1) throw new ConnectError("received a compressed message without grpc-encoding", Code.Internal);
      let message: MessageShape<UnaryMethod["input"]>;
      try {
        message = fromBinary(method.input, frame.subarray(5));
      } catch (err: unknown) {
        throw new ConnectError(`cannot decode ${method.input.typeName}: ${String(err)}`, Code.InvalidArgument);
      }
      const contextValues = peerContext(stream.session?.socket?.remoteAddress).set(deadlineKey, deadlineAt);
      const request = new CallRequest(this.service, method, this.headers[":path"] ?? "", requestHeader(this.headers), contextValues, message, this);
      const response = await this.call(request);
      if (this.finished) return;
      const body = toBinary(method.output, response.message);
      const out = Buffer.allocUnsafe(5 + body.length);
      out[0] = 0;
      out.writeUInt32BE(body.length, 1);
      out.set(body, 5);
      const trailers: http2.OutgoingHttpHeaders = { "grpc-status": "0" };
      for (const [name, value] of response.trailer) trailers[name] = value;
      const responseHeaders: http2.OutgoingHttpHeaders = { ":status": 200, "content-type": "application/grpc" };
      for (const [name, value] of response.header) responseHeaders[name] = value;
      stream.respond(responseHeaders, { waitForTrailers: true });
      this.finish("the call is complete");
      stream.once("wantTrailers", () => stream.sendTrailers(trailers));
      stream.end(out);
    } catch (err: unknown) {
      this.fail(err);
    }
  }

  /** Answers trailers-only: the status travels in the only HEADERS frame. */
  private fail(err: unknown): void {
    if (this.finished) return;
    const error = toConnectError(err);
    this.finish(error.rawMessage, error.code);
    const { stream } = this;
    if (stream.destroyed || stream.headersSent) return;
    const status = setTrailerStatus(new Headers(), error);
    const headers: http2.OutgoingHttpHeaders = { ":status": 200, "content-type": "application/grpc" };
    for (const [name, value] of status) headers[name] = value;
    stream.respond(headers, { endStream: true });
    // Whatever the client still sends is read and dropped.
    stream.resume();
  }

  /** The call is over: stop the deadline, and abort the handler's signal if it was asked for. */
  private finish(reason: string, code = Code.Canceled): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.deadline);
    // An error is built only for a listener: it captures a stack, which costs more than the call's framing.
    this.controller?.abort(new ConnectError(reason, code));
  }

  /** The handler's abort signal, made on first use: most calls never ask. */
  signal(): AbortSignal {
    this.controller ??= new AbortController();
    if (this.finished && !this.controller.signal.aborted) this.controller.abort(new ConnectError("the call is over", Code.Canceled));
    return this.controller.signal;
  }

  private tooLarge(): ConnectError {
    return new ConnectError(`message is larger than ${this.maxBytes} bytes`, Code.ResourceExhausted);
  }
}

/** The request's metadata without HTTP/2 pseudo-headers. */
function requestHeader(headers: http2.IncomingHttpHeaders): Headers {
  const header = new Headers();
  for (const name in headers) {
    const value = headers[name];
    if (name.charCodeAt(0) !== 58 /* ":" */ && value !== undefined) header.set(name, Array.isArray(value) ? value.join(", ") : value);
  }
  return header;
}

function headerValue(value: string | string[] | undefined): string | null {
  return typeof value === "string" ? value : null;
}

function ignore(): void {}
