import { toJsonString, type DescService } from "@bufbuild/protobuf";
import type { Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";
import type { QueueStore } from "../queue/queue-store.js";
import { adminIdentityKey, adminMethodsOf } from "./admin-auth.js";
import { toConnectError } from "./errors.js";
import { interceptOnly } from "./intercept-only.js";
import { passThrough, type StreamEnd } from "./stream-end.js";

/** Longest request summary kept per entry. */
const MAX_REQUEST_CHARS = 2000;

/**
 * Appends every admin call, allowed or refused, to the audit streams: who
 * (token, jwt:<sub>, or unauthenticated), what (RPC and its request as JSON;
 * admin requests carry no secrets), when (the stream id), and the outcome (ok
 * or the error code). Runs outside admin auth, so refusals are recorded too,
 * in a stream of their own (QueueStore.appendAudit).
 *
 * Recording never changes the answer: a request that cannot be written as
 * JSON is summarised, and a record that cannot be stored (Redis down) is
 * logged, not turned into an error.
 */
export function auditInterceptor(services: readonly DescService[], store: QueueStore, log: Logger): Interceptor {
  return interceptOnly(adminMethodsOf(services), (next) => async (req) => {
    const record = async (outcome: string): Promise<void> => {
      const who = req.contextValues.get(adminIdentityKey) ?? "unauthenticated";
      const entry = { who, rpc: req.method.name, request: summary(req), outcome };
      try {
        await store.appendAudit(entry, who === "unauthenticated");
      } catch (err: unknown) {
        log.error({ err, audit: entry }, "could not write the audit record");
      }
    };
    // The code the client receives: the error as the one table maps it. Not awaited
    // on failure: with Redis down the record would only add its own timeout to the error.
    const failed = (err: unknown): void => void record(toConnectError(err).code.toString());
    let response;
    try {
      response = await next(req);
    } catch (err: unknown) {
      failed(err);
      throw err;
    }
    if (!response.stream) {
      await record("ok");
      return response;
    }
    // A stream's outcome is known only at its end (WatchEvent on a missing event fails
    // there), or when the client goes away first: one record, whichever comes first.
    let recorded = false;
    const once = (write: () => void): void => {
      if (recorded) return;
      recorded = true;
      write();
    };
    req.signal.addEventListener("abort", () => once(() => void record("closed by the client")), { once: true });
    // (a reader that stops early: the abort above records it)
    const onEnd = (end: StreamEnd): void => {
      if (end.how === "done") once(() => void record("ok"));
      else if (end.how === "failed") once(() => failed(end.error));
    };
    return { ...response, message: passThrough(response.message, { onEnd }) };
  });
}

function summary(req: Parameters<Parameters<Interceptor>[0]>[0]): string {
  if (req.stream) return "(stream)";
  try {
    return toJsonString(req.method.input, req.message).slice(0, MAX_REQUEST_CHARS);
  } catch (err: unknown) {
    // A field JSON cannot hold (a Timestamp out of range): the call is refused, the record kept.
    return `(not representable as JSON: ${err instanceof Error ? err.message : String(err)})`.slice(0, MAX_REQUEST_CHARS);
  }
}
