import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "../../gen/health/v1/health_pb.js";
import type { QueueStore } from "../queue/queue-store.js";

/** How often each Watch re-checks Redis (watchers are probes and balancers: few). */
const WATCH_INTERVAL_MS = 1000;

/**
 * The standard grpc.health.v1.Health service, for Kubernetes gRPC probes and
 * load balancers: SERVING while Redis answers, NOT_SERVING otherwise. Service
 * names: "" (the whole server) and each served service.
 */
export function healthService(store: QueueStore, serviceNames: readonly string[], closing: AbortSignal): ServiceImpl<typeof Health> {
  const known = new Set(["", ...serviceNames]);
  const status = async (): Promise<ServingStatus> => {
    try {
      await store.ping();
      return ServingStatus.SERVING;
    } catch {
      return ServingStatus.NOT_SERVING;
    }
  };
  const checkName = (service: string): void => {
    if (!known.has(service)) throw new ConnectError(`unknown service ${service}`, Code.NotFound);
  };

  return {
    async check(req) {
      checkName(req.service);
      return { status: await status() };
    },

    async list() {
      const now = await status();
      return { statuses: Object.fromEntries([...known].map((name) => [name, { status: now }])) };
    },

    async *watch(req, ctx) {
      // An unknown service is not an error here: it stays SERVICE_UNKNOWN until it exists.
      if (!known.has(req.service)) {
        yield { status: ServingStatus.SERVICE_UNKNOWN };
        await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve, { once: true }));
        return;
      }
      const signal = AbortSignal.any([ctx.signal, closing]);
      let last: ServingStatus | undefined;
      while (!signal.aborted) {
        const now = await status();
        if (now !== last) yield { status: now };
        last = now;
        await new Promise((resolve) => {
          const timer = setTimeout(resolve, WATCH_INTERVAL_MS);
          signal.addEventListener("abort", () => (clearTimeout(timer), resolve(undefined)), { once: true });
        });
      }
      if (closing.aborted) throw new ConnectError("the server is shutting down: reconnect", Code.Unavailable);
    },
  };
}
