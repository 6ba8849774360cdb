import { toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { peerContext } from "../rpc/caller.js";
import { toConnectError } from "../rpc/errors.js";
import { writeStream, type StreamEnd, type StreamWriter } from "../rpc/stream-end.js";
import { createServerStreamCalls, ServerStreamRequest, type ServerStreamTarget } from "../rpc/stream-calls.js";
import { CallRequest, createUnaryCalls, deadlineKey, type UnaryTarget } from "../rpc/unary-calls.js";
import { decodeRequestFrame, frameOf, grpcDeadline, headerValue, requestHeader } from "./grpc-framing.js";
import { canAnswer, drained, headerRecord, HttpCall, notRead, pathOf, readRpcBody, writeOrDrop, type NodeRequest, type NodeResponse } from "./http-body.js";
import type { BodyBudget } from "./body-budget.js";
import type { LeanPathOptions } from "./lean-path-options.js";


const GRPC_WEB_CONTENT_TYPES = new Set(["application/grpc-web", "application/grpc-web+proto"]);
const CONTENT_TYPE = "application/grpc-web+proto";
/** The flag of the gRPC-web frame that carries the trailers (after the message). */
const TRAILER_FLAG = 0x80;

/**
 * A lean path for what browsers send: gRPC-web, binary protobuf, uncompressed,
 * unary and server-streaming, over HTTP/1.1 (or HTTP/2), on node's
 * request/response API. It runs the same interceptors and handlers as Connect
 * without connect-node's universal adapter and async-iterable pipeline, which
 * made a gRPC-web Reserve over HTTP/1.1 cost three times a gRPC one and held
 * about 39 KB of heap per open WatchStatus (npm run bench, bench/stream-heap.ts).
 * Anything else (the text variant, JSON, compressed requests, unknown paths)
 * answers `false` and goes on to connect-node untouched. CORS is answered
 * before this path is asked.
 *
 * The answer is what connect-node's gRPC-web handler sends: HTTP 200, the
 * messages and then a trailer frame (grpc-status 0 and the handler's trailers),
 * or, for an error before any message, only a trailer frame with grpc-status,
 * grpc-message and grpc-status-details-bin (Connect's own encoder, so its
 * clients read them as before). grpc-timeout deadlines (DEADLINE_EXCEEDED), the
 * client leaving (the handler's signal aborts) and the 64 KiB limit
 * (RESOURCE_EXHAUSTED) hold here too, and the process's budget of unfinished bodies.
 */
export function createLeanWeb(options: LeanPathOptions): (req: NodeRequest, res: NodeResponse) => boolean {
  const targets = new Map<string, Target>();
  for (const target of createUnaryCalls(options.services, options.interceptors, "grpc-web").values()) {
    targets.set(`/${target.service.typeName}/${target.method.name}`, { kind: "unary", ...target });
  }
  for (const target of createServerStreamCalls(options.services, options.interceptors, "grpc-web").values()) {
    targets.set(`/${target.service.typeName}/${target.method.name}`, { kind: "server_streaming", ...target });
  }
  return (req, res) => {
    if (req.method !== "POST") return false;
    const contentType = req.headers["content-type"];
    if (contentType === undefined || !GRPC_WEB_CONTENT_TYPES.has(contentType.toLowerCase())) return false;
    const encoding = req.headers["grpc-encoding"];
    if (encoding !== undefined && encoding !== "identity") return false;
    const target = targets.get(pathOf(req));
    if (!target) return false;
    void serve(target, req, res, options).catch((err: unknown) => answer(res, undefined, toConnectError(err)));
    return true;
  };
}

type Target = ({ kind: "unary" } & UnaryTarget) | ({ kind: "server_streaming" } & ServerStreamTarget);

async function serve(target: Target, req: NodeRequest, res: NodeResponse, { maxRequestBytes, bodyBudget, refused }: LeanPathOptions): Promise<void> {
  const call = new HttpCall(res, answerExpired);
  let called = false;
  try {
    const timeout = grpcDeadline(headerValue(req.headers["grpc-timeout"]));
    if (timeout.error) throw timeout.error;
    const deadlineAt = call.deadlineIn(timeout.timeoutMs);
    // Read in its own function: the body and the message are let go once the call has them.
    const message = await readMessage(target, req, res, maxRequestBytes, bodyBudget);
    // The deadline passed while the body came: answered, and nothing is done.
    if (call.expired) return refused?.(target.method, call.expired);
    const contextValues = peerContext(req.socket.remoteAddress).set(deadlineKey, deadlineAt);
    called = true;
    if (target.kind === "unary") {
      const response = await target.call(new CallRequest(target.service, target.method, req.url ?? "", requestHeader(req.headers), contextValues, message, call.signals));
      call.finish();
      answer(res, response.header, okTrailer(response.trailer), toBinary(target.method.output, response.message));
      return;
    }
    const response = await target.call(new ServerStreamRequest(target.service, target.method, req.url ?? "", requestHeader(req.headers), contextValues, message, call.signals));
    // From here the stream's writer ends the call when the stream ends; nothing here waits for it.
    // A client that leaves, or a deadline that passes, stops a pushed stream (HttpCall aborts the signals).
    call.signals.follow(writeStream(response.message, new WebStream(call, target.method.output, response.header, response.trailer)));
  } catch (err: unknown) {
    call.finish();
    const error = toConnectError(err);
    if (!called) refused?.(target.method, call.expired ?? error);
    answer(res, undefined, error);
  }
}

/**
 * A server stream's messages as gRPC-web frames, each written as it comes. An
 * object, not closures over the call: it is what an open watch holds here.
 */
class WebStream implements StreamWriter<object> {
  /** Dropped for not reading: nothing more is written. */
  private dropped = false;
  /** The last write filled the response's buffer: a read stream waits for it to drain. */
  private full = false;

  constructor(
    private readonly call: HttpCall,
    private readonly output: DescMessage,
    /** The handler's headers, until they are written. */
    private header: Headers | undefined,
    private readonly trailer: Headers,
  ) {}

  write(message: object): boolean {
    const { res } = this.call;
    // The client left or the deadline passed: stopping ends the handler (its cleanup runs).
    if (this.call.gone || this.call.expired) return false;
    // The headers go with the first message (as Connect's do: a handler may set some before it).
    // No content-length: HTTP/1.1 sends the stream chunked, each message as it comes.
    if (!res.headersSent) {
      res.writeHead(200, { ...headerRecord(this.header), "content-type": CONTENT_TYPE });
      this.header = undefined;
    }
    // A client that does not read is dropped, as SSE clients are: counted so (not as a client that left).
    const outcome = writeOrDrop(res, frameOf(0, toBinary(this.output, message as MessageShape<DescMessage>)));
    this.full = outcome === "full";
    if (outcome !== "dropped") return true;
    this.dropped = true;
    this.call.signals.abort(notRead());
    return false;
  }

  ready(): Promise<void> | undefined {
    return this.full ? drained(this.call.res) : undefined;
  }

  close(end: StreamEnd): void {
    const { call } = this;
    call.finish();
    if (call.gone || this.dropped) return;
    try {
      const outcome = call.expired ?? (end.how === "failed" ? toConnectError(end.error) : okTrailer(this.trailer));
      if (!call.res.headersSent) return answer(call.res, this.header, outcome);
      call.res.end(frameOf(TRAILER_FLAG, trailerBytes(trailerOf(outcome))));
    } catch {
      // Nothing above this writer waits for it: a throw here would be an uncaught rejection.
      call.res.destroy();
    }
  }
}

/** The request's one message; refused (a ConnectError) when too large, over the budget, or not one gRPC-web message. */
async function readMessage(target: Target, req: NodeRequest, res: NodeResponse, maxBytes: number, budget: BodyBudget) {
  const frame = await readRpcBody(req, res, maxBytes, budget, 5);
  // A trailer frame is the server's to send.
  if (frame.length >= 5 && ((frame[0] ?? 0) & TRAILER_FLAG) !== 0) throw new ConnectError("the request is not exactly one gRPC-web message", Code.InvalidArgument);
  return decodeRequestFrame(target.method.input, frame, "gRPC-web");
}

function answerExpired(res: NodeResponse, err: ConnectError): void {
  answer(res, undefined, err);
}

/** Writes the answer once: headers, the message if any, the trailer frame. A later call (a deadline that lost the race) does nothing. */
function answer(res: NodeResponse, header: Headers | undefined, outcome: Headers | ConnectError, message?: Uint8Array): void {
  if (!canAnswer(res)) return;
  const trailer = trailerBytes(trailerOf(outcome));
  const body = Buffer.concat(message === undefined ? [frameOf(TRAILER_FLAG, trailer)] : [frameOf(0, message), frameOf(TRAILER_FLAG, trailer)]);
  res.writeHead(200, { ...headerRecord(header), "content-type": CONTENT_TYPE, "content-length": body.length });
  res.end(body);
}

/** The trailers of an outcome: an error's status, or the OK trailers as they are. */
function trailerOf(outcome: Headers | ConnectError): Headers {
  return outcome instanceof ConnectError ? setTrailerStatus(new Headers(), outcome) : outcome;
}

function okTrailer(trailer: Headers): Headers {
  const out = new Headers({ "grpc-status": "0" });
  for (const [name, value] of trailer) out.set(name, value);
  return out;
}

/** gRPC-web trailers: "name: value\r\n" per field, as Connect writes them. */
function trailerBytes(trailer: Headers): Buffer {
  let text = "";
  for (const [name, value] of trailer) text += `${name}: ${value}\r\n`;
  return Buffer.from(text);
}

