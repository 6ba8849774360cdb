import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "../../gen/health/v1/health_pb.js";
import type { QueueStore } from "../queue/queue-store.js";

/** How often Redis is checked while anyone watches. */
const WATCH_INTERVAL_MS = 1000;

/**
 * A health service name that says only whether this process runs (SERVING until
 * it stops), whatever Redis does: for Kubernetes' liveness probe, so that a Redis
 * failover makes pods unready (readiness asks the queue service's name) but
 * restarts none of them.
 */
export const LIVENESS_SERVICE = "liveness";

/**
 * The standard grpc.health.v1.Health service, for Kubernetes gRPC probes and
 * load balancers: SERVING while Redis answers, NOT_SERVING otherwise. Service
 * names: "" (the whole server), each served service, and LIVENESS_SERVICE.
 */
export function healthService(store: QueueStore, serviceNames: readonly string[], closing: AbortSignal): ServiceImpl<typeof Health> {
  const known = new Set(["", ...serviceNames, LIVENESS_SERVICE]);
  const redisStatus = async (): Promise<ServingStatus> => {
    try {
      await store.ping();
      return ServingStatus.SERVING;
    } catch {
      return ServingStatus.NOT_SERVING;
    }
  };
  const status = async (service = ""): Promise<ServingStatus> =>
    service === LIVENESS_SERVICE ? (closing.aborted ? ServingStatus.NOT_SERVING : ServingStatus.SERVING) : redisStatus();
  const checkName = (service: string): void => {
    if (!known.has(service)) throw new ConnectError(`unknown service ${service}`, Code.NotFound);
  };
  const monitor = new StatusMonitor(status, closing);

  return {
    async check(req) {
      checkName(req.service);
      return { status: await status(req.service) };
    },

    async list() {
      const now = await status();
      return { statuses: Object.fromEntries([...known].map((name) => [name, { status: name === LIVENESS_SERVICE ? ServingStatus.SERVING : now }])) };
    },

    async *watch(req, ctx) {
      // An unknown service is not an error here: it stays SERVICE_UNKNOWN until it exists.
      if (!known.has(req.service)) {
        yield { status: ServingStatus.SERVICE_UNKNOWN };
        await monitor.change(ServingStatus.SERVICE_UNKNOWN, ctx.signal, false);
      } else if (req.service === LIVENESS_SERVICE) {
        // Alive until the process stops: no Redis to follow.
        yield { status: ServingStatus.SERVING };
        await monitor.change(ServingStatus.SERVING, ctx.signal, false);
      } else {
        let last: ServingStatus | undefined;
        for (;;) {
          const now = await monitor.change(last, ctx.signal, true);
          if (now === undefined) break;
          yield { status: now };
          last = now;
        }
      }
      if (closing.aborted) throw new ConnectError("the server is shutting down: reconnect", Code.Unavailable);
    },
  };
}

interface Waiter {
  last: ServingStatus | undefined;
  /** Wants status changes (false: only the end of the wait). */
  follow: boolean;
  resolve: (status: ServingStatus | undefined) => void;
}

/**
 * One Redis check a second for every Health.Watch stream of the process
 * together (each stream pinging on its own timer made 8,000 streams 8,000
 * pings a second), and none while nobody watches.
 */
class StatusMonitor {
  private current: ServingStatus | undefined;
  private readonly waiters = new Set<Waiter>();
  private followers = 0;
  private timer: NodeJS.Timeout | undefined;
  private checking = false;

  constructor(
    private readonly check: () => Promise<ServingStatus>,
    private readonly closing: AbortSignal,
  ) {
    closing.addEventListener("abort", () => this.settleAll(undefined), { once: true });
  }

  /**
   * The status once it differs from `last` (at once if it already does), or
   * undefined when `signal` or the server's shutdown ends the wait. `follow`
   * false only waits for the end.
   */
  change(last: ServingStatus | undefined, signal: AbortSignal, follow: boolean): Promise<ServingStatus | undefined> {
    if (signal.aborted || this.closing.aborted) return Promise.resolve(undefined);
    if (follow && this.current !== undefined && this.current !== last) return Promise.resolve(this.current);
    return new Promise((resolve) => {
      const onAbort = (): void => settle(undefined);
      const waiter: Waiter = { last, follow, resolve: (status) => settle(status) };
      const settle = (status: ServingStatus | undefined): void => {
        signal.removeEventListener("abort", onAbort);
        if (this.waiters.delete(waiter) && follow) this.followers--;
        resolve(status);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.waiters.add(waiter);
      if (follow) this.followers++;
      if (follow) this.schedule(this.current === undefined ? 0 : WATCH_INTERVAL_MS);
    });
  }

  private schedule(ms: number): void {
    if (this.timer !== undefined || this.checking || this.followers === 0) return;
    this.timer = setTimeout(() => void this.tick(), ms);
  }

  private async tick(): Promise<void> {
    this.timer = undefined;
    this.checking = true;
    try {
      this.current = await this.check();
    } finally {
      this.checking = false;
    }
    for (const waiter of [...this.waiters]) if (waiter.follow && waiter.last !== this.current) waiter.resolve(this.current);
    this.schedule(WATCH_INTERVAL_MS);
  }

  private settleAll(status: ServingStatus | undefined): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const waiter of [...this.waiters]) waiter.resolve(status);
  }
}
