import { toJsonString } from "@bufbuild/protobuf";
import { ConnectError, type Interceptor } from "@connectrpc/connect";
import type { DescService } from "@bufbuild/protobuf";
import type { QueueStore } from "../queue/queue-store.js";
import { adminIdentityKey, adminMethodsOf } from "./admin-auth.js";
import { interceptOnly } from "./intercept-only.js";

/** Longest request summary kept per entry. */
const MAX_REQUEST_CHARS = 2000;

/**
 * Appends every admin call, allowed or refused, to the audit stream
 * (`<prefix>:audit`): who (token, jwt:<sub>, or unauthenticated), what (RPC and
 * its request as JSON; admin requests carry no secrets), when (the stream id),
 * and the outcome (ok or the error code). Runs outside admin auth, so refusals
 * are recorded too.
 */
export function auditInterceptor(services: readonly DescService[], store: QueueStore): Interceptor {
  return interceptOnly(adminMethodsOf(services), (next) => async (req) => {
    const record = (outcome: string): Promise<void> =>
      store.appendAudit({
        who: req.contextValues.get(adminIdentityKey) ?? "unauthenticated",
        rpc: req.method.name,
        request: req.stream ? "(stream)" : toJsonString(req.method.input, req.message).slice(0, MAX_REQUEST_CHARS),
        outcome,
      });
    try {
      const response = await next(req);
      await record("ok");
      return response;
    } catch (err: unknown) {
      // Not awaited: with Redis down the record would only add its own timeout to the error.
      record(ConnectError.from(err).code.toString()).catch(() => undefined);
      throw err;
    }
  });
}
