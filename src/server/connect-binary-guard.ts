import type * as http from "node:http";
import type * as http2 from "node:http2";
import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import { codeToHttpStatus, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import type { UniversalHandler } from "@connectrpc/connect/protocol";

type Request = http.IncomingMessage | http2.Http2ServerRequest;
type Response = http.ServerResponse | http2.Http2ServerResponse;

/**
 * Connect unary requests in binary protobuf whose message does not decode are
 * the client's fault, but connect-node answers them `internal` (HTTP 500). This
 * reads such a request first: a message that does not decode gets
 * `invalid_argument` (400); one that does is handed, as read, to the same
 * Connect handler. Compressed bodies go to Connect untouched.
 */
export function createConnectBinaryGuard(router: ConnectRouter, maxBytes: number): (req: Request, res: Response) => boolean {
  const unary = new Map<string, UniversalHandler>();
  for (const handler of router.handlers) if (handler.method.methodKind === "unary") unary.set(handler.requestPath, handler);

  return (req, res) => {
    if (req.method !== "POST" || req.headers["content-type"] !== "application/proto" || req.headers["content-encoding"] !== undefined) return false;
    const handler = unary.get(req.url ?? "");
    if (!handler) return false;
    void (async () => {
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of req as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > maxBytes) return sendError(res, new ConnectError(`message is larger than ${maxBytes} bytes`, Code.ResourceExhausted));
        chunks.push(chunk);
      }
      const body = Buffer.concat(chunks);
      try {
        fromBinary(handler.method.input, body);
      } catch (err: unknown) {
        return sendError(res, new ConnectError(`cannot decode ${handler.method.input.typeName}: ${String(err)}`, Code.InvalidArgument));
      }
      const universal = universalRequestFromNodeRequest(req, res, undefined, undefined);
      const response = await handler({
        ...universal,
        body: (async function* () {
          yield body;
        })(),
      });
      await universalResponseToNodeResponse(response, res);
    })().catch((err: unknown) => sendError(res, ConnectError.from(err)));
    return true;
  };
}

function sendError(res: Response, err: ConnectError): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const body = errorToJsonBytes(err, {});
  res.writeHead(codeToHttpStatus(err.code), { "content-type": "application/json", "content-length": body.length });
  res.end(body);
}
