import type * as http2 from "node:http2";
import { create, fromBinary, toBinary, type DescMethod, type DescMethodUnary, type DescService, type MessageShape } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createHandlerContext,
  type Interceptor,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { parseTimeout, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { peerContext } from "./caller.js";
import { toConnectError } from "./errors.js";
import { BodyTooLarge, readBody } from "./http-body.js";

type UnaryImpl = (request: MessageShape<DescMessageOf>, context: ReturnType<typeof createHandlerContext>) => Promise<object> | object;
type DescMessageOf = DescMethodUnary["input"];

export interface LeanGrpcOptions {
  services: readonly { service: DescService; impl: object }[];
  /** The same interceptors the Connect router runs. */
  interceptors: readonly Interceptor[];
  maxRequestBytes: number;
}

const GRPC_CONTENT_TYPES = new Set(["application/grpc", "application/grpc+proto"]);

/**
 * A lean path for the hottest case: unary gRPC over HTTP/2, binary protobuf,
 * uncompressed. It runs the same interceptors and handlers as Connect but skips
 * Connect's general streaming machinery (async iterables, per-call abort
 * plumbing), which is most of the cost of a small unary call. Anything else
 * (streaming, gRPC-web, Connect, compressed requests) answers `false` and goes
 * to connect-node untouched.
 *
 * The protocol stays whole: grpc-timeout deadlines (DEADLINE_EXCEEDED),
 * trailers-only error responses with grpc-status, grpc-message and
 * grpc-status-details-bin (Connect's own encoder), response headers and
 * trailers set by handlers, client cancellation, and the 64 KiB limit
 * (RESOURCE_EXHAUSTED).
 */
export function createLeanGrpc(options: LeanGrpcOptions): (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => boolean {
  const unary = new Map<string, { service: DescService; method: DescMethod & DescMethodUnary; call: (req: UnaryRequest) => Promise<UnaryResponse> }>();
  for (const { service, impl } of options.services) {
    for (const descMethod of service.methods) {
      if (descMethod.methodKind !== "unary") continue;
      const method = descMethod as DescMethod & DescMethodUnary;
      const handler: unknown = Reflect.get(impl, method.localName);
      if (typeof handler !== "function") continue;
      const inner = async (req: UnaryRequest): Promise<UnaryResponse> => {
        const context = createHandlerContext({
          service,
          method,
          protocolName: "grpc",
          requestMethod: "POST",
          url: req.url,
          requestSignal: req.signal,
          requestHeader: req.header,
          contextValues: req.contextValues,
        });
        const result = (await (handler as UnaryImpl).call(impl, req.message, context)) as Parameters<typeof create<typeof method.output>>[1];
        return { stream: false, service, method, header: context.responseHeader, trailer: context.responseTrailer, message: create(method.output, result) };
      };
      const call = options.interceptors.reduceRight<(req: UnaryRequest) => Promise<UnaryResponse>>(
        (next, interceptor) => interceptor(next as Parameters<Interceptor>[0]) as (req: UnaryRequest) => Promise<UnaryResponse>,
        inner,
      );
      unary.set(`/${service.typeName}/${method.name}`, { service, method, call });
    }
  }

  return (req, res) => {
    if (req.method !== "POST" || !GRPC_CONTENT_TYPES.has(req.headers["content-type"] ?? "")) return false;
    const encoding = req.headers["grpc-encoding"];
    if (encoding !== undefined && encoding !== "identity") return false; // compressed: Connect decompresses
    const target = unary.get(req.url);
    if (!target) return false;
    void serve(req, res, target.service, target.method, target.call, options.maxRequestBytes);
    return true;
  };
}

async function serve(
  req: http2.Http2ServerRequest,
  res: http2.Http2ServerResponse,
  service: DescService,
  method: DescMethod & DescMethodUnary,
  call: (req: UnaryRequest) => Promise<UnaryResponse>,
  maxBytes: number,
): Promise<void> {
  const stream = req.stream;
  const abort = new AbortController();
  // Only a stream that closes before the answer is a cancellation (aborting costs an event per call).
  const onClose = (): void => abort.abort(new ConnectError("the client cancelled", Code.Canceled));
  stream.once("close", onClose);
  let deadline: NodeJS.Timeout | undefined;
  try {
    const timeout = parseTimeout(headerValue(req, "grpc-timeout"), Number.MAX_SAFE_INTEGER);
    if (timeout.error) throw timeout.error;
    if (timeout.timeoutMs !== undefined) {
      deadline = setTimeout(() => abort.abort(new ConnectError("the deadline was exceeded", Code.DeadlineExceeded)), timeout.timeoutMs);
    }
    const frame = await readFrame(req, maxBytes);
    if (((frame[0] ?? 0) & 1) === 1) throw new ConnectError("received a compressed message without grpc-encoding", Code.Internal);
    let message: MessageShape<typeof method.input>;
    try {
      message = fromBinary(method.input, frame.subarray(5));
    } catch (err: unknown) {
      throw new ConnectError(`cannot decode ${method.input.typeName}: ${String(err)}`, Code.InvalidArgument);
    }
    const header = new Headers();
    for (const [name, value] of Object.entries(req.headers)) {
      if (!name.startsWith(":") && value !== undefined) header.set(name, Array.isArray(value) ? value.join(", ") : value);
    }
    let onAbort: (() => void) | undefined;
    const response = await Promise.race([
      call({ stream: false, service, method, requestMethod: "POST", url: req.url, signal: abort.signal, header, contextValues: peerContext(req.socket.remoteAddress), message }),
      new Promise<never>((_, reject) => {
        onAbort = () => reject(abort.signal.reason);
        abort.signal.addEventListener("abort", onAbort, { once: true });
      }),
    ]).finally(() => onAbort && abort.signal.removeEventListener("abort", onAbort));
    if (stream.destroyed) return;
    const body = toBinary(method.output, response.message);
    const out = Buffer.alloc(5 + body.length);
    out.writeUInt32BE(body.length, 1);
    out.set(body, 5);
    // The compatibility response owns the stream's trailers: set them through it.
    res.addTrailers({ "grpc-status": "0", ...Object.fromEntries(response.trailer) });
    res.writeHead(200, { "content-type": "application/grpc", ...Object.fromEntries(response.header) });
    res.end(out);
  } catch (err: unknown) {
    if (stream.destroyed || stream.headersSent) return;
    // Trailers-only: the status travels in the only HEADERS frame.
    const status = setTrailerStatus(new Headers(), toConnectError(err));
    stream.respond({ ":status": 200, "content-type": "application/grpc", ...Object.fromEntries(status) }, { endStream: true });
  } finally {
    clearTimeout(deadline);
    stream.off("close", onClose);
  }
}

function headerValue(req: http2.Http2ServerRequest, name: string): string | null {
  const value = req.headers[name];
  return typeof value === "string" ? value : null;
}

/** The request's one length-prefixed message, refused past `maxBytes`. */
async function readFrame(req: http2.Http2ServerRequest, maxBytes: number): Promise<Buffer> {
  let frame: Buffer;
  try {
    frame = await readBody(req, maxBytes + 5);
  } catch (err: unknown) {
    if (err instanceof BodyTooLarge) throw new ConnectError(`message is larger than ${maxBytes} bytes`, Code.ResourceExhausted);
    throw err;
  }
  if (frame.length < 5 || frame.readUInt32BE(1) !== frame.length - 5) {
    throw new ConnectError("the request is not exactly one gRPC message", Code.InvalidArgument);
  }
  return frame;
}
