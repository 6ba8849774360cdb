import { brotliDecompressSync, gunzipSync } from "node:zlib";
import { base64Decode } from "@bufbuild/protobuf/wire";
import { Code, ConnectError, createConnectRouter, createContextKey, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import type { UniversalHandler, UniversalServerResponse } from "@connectrpc/connect/protocol";
import { peerContext } from "../rpc/caller.js";
import type { Refused } from "../rpc/rpc-surface.js";
import { connectDeadline, grpcDeadline } from "./grpc-framing.js";
import { budgetedBody, sendConnectError, type NodeRequest, type NodeResponse } from "./http-body.js";
import type { BodyBudget } from "./body-budget.js";
import { ACCEPT_COMPRESSION } from "./compression.js";
import { countRefusal } from "./connect-node-refusals.js";
import { decodeConnectMessage } from "./lean-connect.js";

export interface ConnectHandlerOptions {
  routes: (router: ConnectRouter) => void;
  interceptors: readonly Interceptor[];
  maxRequestBytes: number;
  /** What unfinished request bodies may hold together (past it: RESOURCE_EXHAUSTED in the call's protocol). */
  bodyBudget: BodyBudget;
  /** Serves what no RPC path matches (the REST gateway). */
  fallback: (req: NodeRequest, res: NodeResponse) => void;
  /** A call answered before the interceptors ran (connect-node's own refusals, and ours here): counted here. */
  refused?: Refused;
}

/** Set by the first interceptor: connect-node ran the chain, whose interceptors count the call. */
const interceptedKey = createContextKey<{ yes: boolean } | undefined>(undefined, { description: "the interceptors ran" });
const markIntercepted: Interceptor = (next) => (req) => {
  const intercepted = req.contextValues.get(interceptedKey);
  if (intercepted) intercepted.yes = true;
  return next(req);
};

/**
 * A stream's request message that does not decode (binary), or is flagged
 * compressed with no compression named, is the client's fault:
 * `invalid_argument`, as the lean paths answer an undecodable one. connect-node
 * answers both `internal`, its code for a client that cannot read a server's
 * answer, which the error interceptor logs as a server fault (a stack trace per
 * request: any client could flood the log).
 */
const undecodableIsInvalid: Interceptor = (next) => (req) => (req.stream ? next({ ...req, message: decodedOrInvalid(req.message, req.method.input.typeName) }) : next(req));

const PARSE_BINARY = "parse binary: ";
const COMPRESSED_UNNAMED = "received compressed envelope, but do not know how to decompress";

async function* decodedOrInvalid<T>(messages: AsyncIterable<T>, typeName: string): AsyncGenerator<T> {
  try {
    yield* messages;
  } catch (err: unknown) {
    if (!(err instanceof ConnectError) || err.code !== Code.Internal) throw err;
    if (err.rawMessage.startsWith(PARSE_BINARY)) throw new ConnectError(`cannot decode ${typeName}: ${err.rawMessage.slice(PARSE_BINARY.length)}`, Code.InvalidArgument);
    if (err.rawMessage === COMPRESSED_UNNAMED) throw new ConnectError("a message is flagged compressed but the request names no compression", Code.InvalidArgument);
    throw err;
  }
}

/**
 * connect-node's handlers (Connect, gRPC and gRPC-web, compressed or not) for
 * what the lean paths leave, as `connectNodeAdapter` serves them, with these
 * differences:
 * - every request body is read under the process's budget of unfinished
 *   bodies; past it the call fails RESOURCE_EXHAUSTED in its own protocol;
 * - a deadline too far off for a timer is none (`dropFarDeadline`);
 * - a Connect GET whose message does not decode gets `invalid_argument`
 *   (400): connect-node answers it `internal` (500), but it is the client's
 *   fault (a POST's is answered so by the lean path, lean-connect.ts);
 * - a body that does not inflate is `invalid_argument` too (compression.ts),
 *   and so is a stream's request message that does not decode.
 */
export function createConnectHandler(options: ConnectHandlerOptions): (req: NodeRequest, res: NodeResponse) => void {
  // Compression as connectNodeAdapter accepts it by default (a body that does not inflate: the client's fault).
  const router = createConnectRouter({ interceptors: [markIntercepted, undecodableIsInvalid, ...options.interceptors], readMaxBytes: options.maxRequestBytes, acceptCompression: ACCEPT_COMPRESSION });
  options.routes(router);
  const handlers = new Map<string, UniversalHandler>();
  for (const handler of router.handlers) handlers.set(handler.requestPath, handler);
  const { bodyBudget } = options;
  const refused = options.refused ?? (() => undefined);

  return (req, res) => {
    // (split at the first "?" only: a query may hold more, as a Connect GET's JSON message can)
    const url = req.url ?? "";
    const mark = url.indexOf("?");
    const [path, query] = mark < 0 ? [url, ""] : [url.slice(0, mark), url.slice(mark + 1)];
    const handler = handlers.get(path);
    if (!handler) return options.fallback(req, res);
    const refuse = (err: ConnectError): void => {
      refused(handler.method, err);
      sendConnectError(res, err);
    };
    // (Connect GET is for unary RPCs; a stream's GET goes on to Connect's 405.)
    if (req.method === "GET" && handler.method.methodKind === "unary" && refuseUndecodableGet(handler, new URLSearchParams(query), refuse, options.maxRequestBytes)) return;
    void serve(handler, req, res, budgetedBody(req, bodyBudget), refuse, refused);
  };
}

/** One call through connect-node's handler, its body as given. */
async function serve(handler: UniversalHandler, req: NodeRequest, res: NodeResponse, body: AsyncGenerator<Uint8Array>, refuse: (err: ConnectError) => void, refused: Refused): Promise<void> {
  // Connect may stop reading a body without ending it (a second message where one was
  // due: "extra input message"), and its answer never settles the promise below
  // (it waits for an "end" node's responses do not emit): the body is ended when the
  // response closes, giving its bytes back to the budget (else each such call held them).
  res.once("close", () => void body.return(undefined));
  // HTTP/1.0 may come without Host; connect-node then throws (a 500 at best).
  if (req.headers.host === undefined && !("authority" in req)) {
    return refuse(new ConnectError("the request has no Host header", Code.InvalidArgument));
  }
  const intercepted = { yes: false };
  let response: UniversalServerResponse;
  try {
    // The TCP peer, as every entry point gives it: per-caller limits key on it.
    const universal = universalRequestFromNodeRequest(req, res, undefined, peerContext(req.socket.remoteAddress).set(interceptedKey, intercepted));
    dropFarDeadline(universal.header);
    response = await handler({ ...universal, body });
  } catch (err: unknown) {
    return refuse(ConnectError.from(err));
  }
  try {
    // connect-node answered on its own (a protocol error before any interceptor): counted by its code.
    if (!intercepted.yes) response = await countRefusal(handler, response, refused);
    await universalResponseToNodeResponse(response, res);
  } catch (err: unknown) {
    sendConnectError(res, ConnectError.from(err));
  }
}


/**
 * A deadline past what a timer can wait (2^31-1 ms, about 24.8 days) is none,
 * as on the lean paths: Connect would set a timer Node fires at once, and a
 * stream asked to live that long ended as it opened.
 */
function dropFarDeadline(header: Headers): void {
  for (const [name, deadline] of [["connect-timeout-ms", connectDeadline], ["grpc-timeout", grpcDeadline]] as const) {
    const value = header.get(name);
    if (value === null) continue;
    // Present, well-formed, and yet no deadline: too far off.
    const { timeoutMs, error } = deadline(value);
    if (timeoutMs === undefined && !error) header.delete(name);
  }
}

/**
 * A Connect GET whose message does not decode (as Connect reads it: base64 or
 * the text itself, inflated, then binary or JSON): answered 400 here (true),
 * where connect-node answers 500; anything else goes on to Connect.
 */
function refuseUndecodableGet(handler: UniversalHandler, query: URLSearchParams, refuse: (err: ConnectError) => void, maxBytes: number): boolean {
  const message = query.get("message");
  const encoding = query.get("encoding");
  if (message === null || (encoding !== "proto" && encoding !== "json")) return false;
  let bytes: Uint8Array;
  try {
    bytes = query.get("base64") === "1" ? base64Decode(message) : new TextEncoder().encode(message);
  } catch (err: unknown) {
    refuse(new ConnectError(`the message is not base64: ${err instanceof Error ? err.message : String(err)}`, Code.InvalidArgument));
    return true;
  }
  try {
    // (a URL's worth of bytes, inflated synchronously to at most the message limit; past it Connect answers 429)
    const compression = query.get("compression");
    // (nothing inflates to nothing, as Connect takes it)
    if (bytes.length === 0) return false;
    if (compression === "gzip") bytes = gunzipSync(bytes, { maxOutputLength: maxBytes });
    else if (compression === "br") bytes = brotliDecompressSync(bytes, { maxOutputLength: maxBytes });
    else if (compression !== null && compression !== "identity") return false;
  } catch (err: unknown) {
    if (err instanceof RangeError) return false;
    refuse(new ConnectError(`the ${query.get("compression") ?? ""} message does not inflate`, Code.InvalidArgument));
    return true;
  }
  try {
    decodeConnectMessage(handler.method.input, encoding === "proto", bytes);
    return false;
  } catch (err: unknown) {
    refuse(ConnectError.from(err));
    return true;
  }
}
