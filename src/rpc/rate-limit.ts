import { create, getOption, type DescService } from "@bufbuild/protobuf";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { throttled } from "../../gen/ticketqueue/v1/options_pb.js";
import type { QueueStore } from "../queue/queue-store.js";
import { callerIdentity, peerAddressKey, type CallerOptions } from "./caller.js";
import { interceptOnly } from "./intercept-only.js";
import { callerKey } from "./user-identity.js";

export interface RateLimitOptions extends CallerOptions {
  /** Calls per minute per caller on each RPC marked `(ticketqueue.v1.throttled)`; 0 turns limiting off. */
  perMinute: number;
}

/**
 * Per-caller limits on the RPCs the proto marks throttled, kept in Redis so
 * every worker shares them. Past the limit: RESOURCE_EXHAUSTED (HTTP 429) with
 * `retry-after` (seconds) and a google.rpc.RetryInfo detail.
 */
export function rateLimitInterceptor(services: readonly DescService[], store: QueueStore, options: RateLimitOptions): Interceptor {
  const limited = new Set(services.flatMap((s) => s.methods).filter((m) => options.perMinute > 0 && getOption(m, throttled)));
  return interceptOnly(limited, (next) => async (req) => {
    const who = req.contextValues.get(callerKey);
    const caller = callerIdentity(req.header, req.contextValues.get(peerAddressKey), options, who?.kind === "user" ? who.sub : undefined);
    const { allowed, retryAfterMs } = await store.allowCall(`${req.method.name}:${caller}`, options.perMinute, 60_000);
    if (!allowed) {
      const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
      throw new ConnectError(`too many ${req.method.name} calls: retry in ${seconds} s`, Code.ResourceExhausted, { "retry-after": String(seconds) }, [
        { desc: RetryInfoSchema, value: { retryDelay: create(DurationSchema, { seconds: BigInt(seconds) }) } },
      ]);
    }
    return next(req);
  });
}
