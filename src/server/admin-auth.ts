import { createHash, timingSafeEqual } from "node:crypto";
import { getOption, type DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { admin } from "../../gen/ticketqueue/v1/options_pb.js";

/** The metadata key (HTTP header) that carries the admin token. */
export const ADMIN_TOKEN_HEADER = "x-token";

/**
 * Requires the admin token on every RPC the proto marks `(ticketqueue.v1.admin)`.
 * Tokens are compared as SHA-256 digests with timingSafeEqual: constant time,
 * whatever their lengths.
 */
export function adminAuthInterceptor(services: readonly DescService[], adminToken: string): Interceptor {
  const adminMethods = new Set(services.flatMap((s) => s.methods).filter((m) => getOption(m, admin)));
  const expected = digest(adminToken);
  return (next) => async (req) => {
    if (adminMethods.has(req.method)) {
      const token = req.header.get(ADMIN_TOKEN_HEADER);
      if (!token) {
        throw new ConnectError(`${req.method.name} needs the admin token in the ${ADMIN_TOKEN_HEADER} header`, Code.Unauthenticated);
      }
      if (!timingSafeEqual(digest(token), expected)) {
        throw new ConnectError("the admin token is not valid", Code.Unauthenticated);
      }
    }
    return next(req);
  };
}

function digest(token: string): Buffer {
  return createHash("sha256").update(token, "utf8").digest();
}
