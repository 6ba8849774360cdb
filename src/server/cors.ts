import type * as http from "node:http";
import type * as http2 from "node:http2";
import { cors as connectCors } from "@connectrpc/connect";
import { ADMIN_TOKEN_HEADER } from "../rpc/admin-auth.js";

type Request = http.IncomingMessage | http2.Http2ServerRequest;
type Response = http.ServerResponse | http2.Http2ServerResponse;

/** Browsers may cache a preflight answer this long. */
const PREFLIGHT_MAX_AGE_SECONDS = 7200;

/**
 * CORS for browser origins on an allow-list (CORS_ORIGINS). Connect's own lists
 * of methods and headers cover gRPC-web and Connect; the admin token header and
 * JSON bodies cover REST. An origin not on the list gets no CORS headers, so the
 * browser refuses to hand it the answer. Returns true when it answered a preflight.
 */
export function createCors(allowedOrigins: readonly string[]): (req: Request, res: Response) => boolean {
  const any = allowedOrigins.includes("*");
  const origins = new Set(allowedOrigins);
  const allowHeaders = [...new Set([...connectCors.allowedHeaders, ADMIN_TOKEN_HEADER, "Authorization"])].join(", ");
  const allowMethods = [...new Set([...connectCors.allowedMethods, "PATCH", "OPTIONS"])].join(", ");
  const exposeHeaders = connectCors.exposedHeaders.join(", ");

  return (req, res) => {
    // Every answer varies by origin once there is a list, those without one too: a cache that
    // kept an answer asked for with no Origin (no CORS headers) must not give it to an allowed one.
    if (allowedOrigins.length > 0) res.setHeader("vary", "Origin");
    const origin = req.headers.origin;
    if (origin === undefined || (!any && !origins.has(origin))) return false;
    res.setHeader("access-control-allow-origin", any ? "*" : origin);
    if (req.method === "OPTIONS" && req.headers["access-control-request-method"] !== undefined) {
      res.writeHead(204, {
        "access-control-allow-methods": allowMethods,
        "access-control-allow-headers": allowHeaders,
        "access-control-max-age": String(PREFLIGHT_MAX_AGE_SECONDS),
      });
      res.end();
      return true;
    }
    res.setHeader("access-control-expose-headers", exposeHeaders);
    return false;
  };
}
