import type { DescMethod } from "@bufbuild/protobuf";
import type { Interceptor } from "@connectrpc/connect";

/**
 * `interceptor` on the calls of `methods` only. Every other call goes straight
 * to the next one, without an async frame of its own: interceptors run on every
 * call, and most concern a few admin or throttled RPCs.
 */
export function interceptOnly(methods: ReadonlySet<DescMethod>, interceptor: Interceptor): Interceptor {
  return (next) => {
    const intercepted = interceptor(next);
    return (req) => (methods.has(req.method) ? intercepted(req) : next(req));
  };
}
