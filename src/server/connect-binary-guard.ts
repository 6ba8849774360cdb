import type * as http from "node:http";
import type * as http2 from "node:http2";
import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import type { UniversalHandler } from "@connectrpc/connect/protocol";
import { peerContext } from "../rpc/caller.js";
import { BodyTooLarge, readBody, sendConnectError } from "./http-body.js";

type Request = http.IncomingMessage | http2.Http2ServerRequest;
type Response = http.ServerResponse | http2.Http2ServerResponse;

/**
 * Connect unary requests in binary protobuf (POST, or GET with the message in
 * the query) whose message does not decode are the client's fault, but
 * connect-node answers them `internal` (HTTP 500). This reads such a request first: a message that does not decode gets
 * `invalid_argument` (400); one that does is handed, as read, to the same
 * Connect handler. Compressed bodies go to Connect untouched.
 */
export function createConnectBinaryGuard(router: ConnectRouter, maxBytes: number): (req: Request, res: Response) => boolean {
  const unary = new Map<string, UniversalHandler>();
  for (const handler of router.handlers) if (handler.method.methodKind === "unary") unary.set(handler.requestPath, handler);

  return (req, res) => {
    const [path = "", query = ""] = (req.url ?? "").split("?", 2);
    const handler = unary.get(path);
    if (!handler) return false;
    // Connect GET (side-effect-free RPCs): the message travels in the query.
    if (req.method === "GET") return refuseUndecodableGet(handler, new URLSearchParams(query), res);
    const contentType = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase();
    if (req.method !== "POST" || contentType !== "application/proto" || req.headers["content-encoding"] !== undefined) return false;
    void (async () => {
      let body: Buffer;
      try {
        body = await readBody(req, maxBytes);
      } catch (err: unknown) {
        if (err instanceof BodyTooLarge) return sendConnectError(res, new ConnectError(`message is larger than ${maxBytes} bytes`, Code.ResourceExhausted));
        throw err;
      }
      try {
        fromBinary(handler.method.input, body);
      } catch (err: unknown) {
        return sendConnectError(res, undecodable(handler, err));
      }
      // The TCP peer, as every entry point gives it: per-caller limits key on it.
      const universal = universalRequestFromNodeRequest(req, res, undefined, peerContext(req.socket.remoteAddress));
      const response = await handler({
        ...universal,
        body: (async function* () {
          yield body;
        })(),
      });
      await universalResponseToNodeResponse(response, res);
    })().catch((err: unknown) => sendConnectError(res, ConnectError.from(err)));
    return true;
  };
}

/** A Connect GET whose binary message does not decode: answered 400 here (true); anything else goes on to Connect. */
function refuseUndecodableGet(handler: UniversalHandler, query: URLSearchParams, res: Response): boolean {
  const message = query.get("message");
  // Only base64 (what Connect clients send for binary); raw percent-encoded bytes go on to Connect.
  if (query.get("encoding") !== "proto" || query.get("base64") !== "1" || message === null || query.get("compression") !== null) return false;
  const bytes = Buffer.from(message, "base64url");
  try {
    fromBinary(handler.method.input, bytes);
    return false;
  } catch (err: unknown) {
    sendConnectError(res, undecodable(handler, err));
    return true;
  }
}

function undecodable(handler: UniversalHandler, err: unknown): ConnectError {
  return new ConnectError(`cannot decode ${handler.method.input.typeName}: ${err instanceof Error ? err.message : String(err)}`, Code.InvalidArgument);
}
