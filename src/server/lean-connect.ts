import { fromBinary, fromJsonString, toBinary, toJsonString, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { compressionNegotiate, type Compression } from "@connectrpc/connect/protocol";
import { parseContentType } from "@connectrpc/connect/protocol-connect";
import { peerContext } from "../rpc/caller.js";
import { toConnectError } from "../rpc/errors.js";
import { CallRequest, createUnaryCalls, deadlineKey, type UnaryTarget } from "../rpc/unary-calls.js";
import { connectDeadline, headerValue, requestHeader } from "./grpc-framing.js";
import { canAnswer, headerRecord, HttpCall, pathOf, readRpcBody, sendConnectError, type NodeRequest, type NodeResponse } from "./http-body.js";
import { ACCEPT_COMPRESSION } from "./compression.js";
import type { LeanPathOptions } from "./lean-path-options.js";


/** Connect's JSON reading as its router does it by default: unknown fields are ignored. */
const JSON_OPTIONS = { ignoreUnknownFields: true };
/** As Connect decodes JSON: a byte order mark is dropped, bytes that are not UTF-8 replaced. */
const UTF8 = new TextDecoder();
/** As connect-node: an answer compressed from 1 KiB on. */
const COMPRESS_MIN_BYTES = 1024;

/**
 * A lean path for Connect unary calls, JSON or binary, POST, uncompressed or
 * gzip or brotli: what a browser's `fetch` and Connect's clients send. The same interceptors
 * and handlers as Connect's router, without connect-node's universal adapter
 * (Connect JSON Reserve over HTTP/1.1 ran at 0.51-0.69 × gRPC through it,
 * npm run bench). Anything else (GET, an unknown encoding, a stream, an
 * unknown path or content type) answers `false` and goes on to connect-node.
 *
 * The answer is connect-node's: 200 with the message in the request's format,
 * the handler's headers and its trailers as `trailer-` headers, the body
 * compressed as the client accepts from 1 KiB on; an error is Connect's JSON
 * error with its HTTP status and its metadata as headers. connect-timeout-ms
 * (DEADLINE_EXCEEDED), the client leaving (the handler's signal aborts), the
 * 64 KiB limit (RESOURCE_EXHAUSTED) and the budget of unfinished bodies hold
 * here too. Where it differs: a binary message that does not decode is
 * INVALID_ARGUMENT (400), as on every path of ours, where connect-node says
 * INTERNAL (500); a deadline that passed before the handler ran (0, or while
 * the body came) is answered DEADLINE_EXCEEDED and the handler does not run,
 * where connect-node runs it; an error's body is not compressed, and headers a
 * handler set before it failed are not sent (none of ours does).
 */
export function createLeanConnect(options: LeanPathOptions): (req: NodeRequest, res: NodeResponse) => boolean {
  const targets = new Map<string, UnaryTarget>();
  for (const target of createUnaryCalls(options.services, options.interceptors, "connect").values()) {
    targets.set(`/${target.service.typeName}/${target.method.name}`, target);
  }
  return (req, res) => {
    if (req.method !== "POST") return false;
    const type = parseContentType(req.headers["content-type"] ?? null);
    if (type === undefined || type.stream) return false;
    // An encoding Connect does not take goes on to connect-node, which names the ones it does.
    const encoding = headerValue(req.headers["content-encoding"]);
    const compression = encoding === null || encoding === "identity" ? null : ACCEPT_COMPRESSION.find((c) => c.name === encoding);
    if (compression === undefined) return false;
    // (a POST's query string means nothing to Connect)
    const target = targets.get(pathOf(req));
    if (!target) return false;
    void serve(target, { binary: type.binary, compression }, req, res, options).catch((err: unknown) => answerError(res, toConnectError(err)));
    return true;
  };
}

/** How the request's message comes: binary or JSON, compressed or not. */
interface Format {
  binary: boolean;
  compression: Compression | null;
}

async function serve(target: UnaryTarget, { binary, compression }: Format, req: NodeRequest, res: NodeResponse, { maxRequestBytes, bodyBudget, refused }: LeanPathOptions): Promise<void> {
  const call = new HttpCall(res, answerError);
  let called = false;
  try {
    const timeout = connectDeadline(headerValue(req.headers["connect-timeout-ms"]));
    if (timeout.error) throw timeout.error;
    const deadlineAt = call.deadlineIn(timeout.timeoutMs);
    const read = await readRpcBody(req, res, maxRequestBytes, bodyBudget);
    // (connect-node's own decompression: at most the message limit, a bomb is RESOURCE_EXHAUSTED)
    const body = compression ? await compression.decompress(read, maxRequestBytes) : read;
    // The deadline passed while the body came: answered, and nothing is done.
    if (call.expired) return refused?.(target.method, call.expired);
    const message = decode(target, binary, body);
    const contextValues = peerContext(req.socket.remoteAddress).set(deadlineKey, deadlineAt);
    called = true;
    const response = await target.call(new CallRequest(target.service, target.method, req.url ?? "", requestHeader(req.headers), contextValues, message, call.signals));
    call.finish();
    if (call.expired || res.headersSent) return;
    let answer: Uint8Array = binary ? toBinary(target.method.output, response.message) : Buffer.from(toJsonString(target.method.output, response.message));
    const headers: Record<string, string | number> = headerRecord(response.header, response.trailer);
    headers["content-type"] = binary ? "application/proto" : "application/json";
    // (as connect-node: with no accept-encoding, the request's own encoding)
    const answerCompression = compressionNegotiate(ACCEPT_COMPRESSION, compression?.name ?? null, headerValue(req.headers["accept-encoding"]), "accept-encoding").response;
    if (answerCompression && answer.byteLength >= COMPRESS_MIN_BYTES) {
      answer = await answerCompression.compress(answer);
      headers["content-encoding"] = answerCompression.name;
    }
    headers["content-length"] = answer.byteLength;
    if (!canAnswer(res)) return;
    res.writeHead(200, headers);
    res.end(answer);
  } catch (err: unknown) {
    call.finish();
    const error = toConnectError(err);
    if (!called) refused?.(target.method, call.expired ?? error);
    answerError(res, error);
  }
}

function decode(target: UnaryTarget, binary: boolean, body: Uint8Array): CallRequest["message"] {
  return decodeConnectMessage(target.method.input, binary, body);
}

/** A Connect message as Connect reads it (binary, or JSON with unknown fields ignored); INVALID_ARGUMENT when it is not one. Also what connect-handler.ts checks a GET's message with. */
export function decodeConnectMessage<D extends DescMessage>(input: D, binary: boolean, body: Uint8Array): MessageShape<D> {
  try {
    return binary ? fromBinary(input, body) : fromJsonString(input, UTF8.decode(body), JSON_OPTIONS);
  } catch (err: unknown) {
    const why = err instanceof Error ? err.message : String(err);
    throw new ConnectError(binary ? `cannot decode ${input.typeName}: ${why}` : why, Code.InvalidArgument);
  }
}

/** Connect's JSON error, once: a later one (a deadline that lost the race) does nothing. */
function answerError(res: NodeResponse, err: ConnectError): void {
  if (canAnswer(res)) sendConnectError(res, err);
}
