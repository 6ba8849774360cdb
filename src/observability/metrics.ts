import cluster from "node:cluster";
import type { DescMethod } from "@bufbuild/protobuf";
import { ConnectError, type Interceptor } from "@connectrpc/connect";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { QueueStore } from "../queue/queue-store.js";
import { whenCallEnds } from "./call-end.js";
import { askPrimary, atMostEvery } from "./cluster-metrics.js";

export interface Metrics {
  registry: Registry;
  /** Counts and times every RPC by its final code; the outermost interceptor. */
  interceptor: Interceptor;
  /** Counts a call answered before the interceptors ran (a message that does not decode, a bad deadline, a body past the limits) as they count one, with its code. */
  refused(method: DescMethod, err: unknown): void;
  /** The text exposition: this process's, or every worker's combined when run under the cluster primary. */
  exposition(): Promise<string>;
  /** Reports the server's open streams at scrape time (the server calls it once it exists). */
  observeOpenStreams(count: () => number): void;
  /** Reports the request bodies being received at scrape time: bytes they hold, and how many were cut so far (BodyBudget). */
  observeRequestBodies(read: () => { heldBytes: number; cutTotal: number }): void;
}

/**
 * Prometheus metrics (prom-client): per-RPC counts by code and latency
 * histograms, under our names and under go-grpc-prometheus's (grpc_server_*,
 * which stock Grafana dashboards read); per-event gauges read from Redis at
 * scrape time; Redis's ping. Codes are the canonical gRPC names (OK,
 * INVALID_ARGUMENT, ...), the one casing of every label.
 * Under WORKERS > 1, a scrape of any worker answers for all of them (the
 * primary combines them: cluster-metrics.ts).
 */
export function createMetrics(store: QueueStore): Metrics {
  // What costs Redis work is read at most once a second, whatever the scrape rate.
  const eventUsers = atMostEvery(1000, async () => {
    const users = new Map<string, Record<string, number>>();
    for (const id of await store.eventIds().catch(() => [])) {
      const e = await store.getEvent(id).catch(() => undefined);
      if (!e) continue;
      users.set(id, {
        capacity: e.capacity,
        reserved: e.seats,
        held: e.held,
        waiting: e.waiting,
        joined_total: e.joinedTotal,
        promoted_total: e.promotedTotal,
        cancelled_total: e.cancelledTotal,
        expired_total: e.expiredTotal,
      });
    }
    return users;
  });
  const redisPing = atMostEvery(1000, () => store.ping().then((ms) => ms / 1000, () => -1));
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "ticketqueue_" });
  const requests = new Counter({ name: "ticketqueue_rpc_requests_total", help: "RPCs by method and final code (a stream when it ends)", labelNames: ["rpc", "code"], registers: [registry] });
  // go-grpc-prometheus's names and labels, for every service on every transport.
  const grpcLabels = ["grpc_type", "grpc_service", "grpc_method"] as const;
  const started = new Counter({ name: "grpc_server_started_total", help: "RPCs started on the server", labelNames: grpcLabels, registers: [registry] });
  const handled = new Counter({
    name: "grpc_server_handled_total",
    help: "RPCs completed on the server, whatever their code (a stream when it ends)",
    labelNames: [...grpcLabels, "grpc_code"],
    registers: [registry],
  });
  const handling = new Histogram({
    name: "grpc_server_handling_seconds",
    help: "Time from the start of an RPC to its completion (a stream's end)",
    labelNames: grpcLabels,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const duration = new Histogram({
    name: "ticketqueue_rpc_duration_seconds",
    help: "Time to answer an RPC (to the first message for streams)",
    labelNames: ["rpc"],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  // Read from Redis at scrape time: the same in every worker, so combined by taking one, not by summing.
  new Gauge({
    name: "ticketqueue_event_users",
    help: "Per event: capacity, reserved (held included), held, waiting; and since the last Reset joined_total, promoted_total (rate() is the promotion rate), cancelled_total, expired_total",
    labelNames: ["event", "kind"],
    aggregator: "first",
    registers: [registry],
    async collect() {
      for (const [id, values] of await eventUsers()) {
        for (const [kind, value] of Object.entries(values)) this.set({ event: id, kind }, value);
      }
    },
  });
  new Gauge({
    name: "ticketqueue_redis_ping_seconds",
    help: "Round trip of a Redis PING at scrape time (-1 when Redis does not answer)",
    aggregator: "max",
    registers: [registry],
    async collect() {
      this.set(await redisPing());
    },
  });

  let openStreams = (): number => 0;
  new Gauge({
    name: "ticketqueue_open_streams",
    help: "Streaming calls open now (watch streams, Health.Watch, reflection), at most MAX_STREAMS per process",
    registers: [registry],
    collect() {
      this.set(openStreams());
    },
  });

  let requestBodies = (): { heldBytes: number; cutTotal: number } => ({ heldBytes: 0, cutTotal: 0 });
  new Gauge({
    name: "ticketqueue_request_body_bytes_held",
    help: "Bytes held by request bodies still being received, at most an eighth of the heap limit per process",
    registers: [registry],
    collect() {
      this.set(requestBodies().heldBytes);
    },
  });
  let cutCounted = 0;
  new Counter({
    name: "ticketqueue_request_bodies_cut_total",
    help: "Unfinished request bodies cut to make room for newer ones (clients holding bodies open, or too many bodies at once)",
    registers: [registry],
    collect() {
      const { cutTotal } = requestBodies();
      this.inc(cutTotal - cutCounted);
      cutCounted = cutTotal;
    },
  });

  const interceptor: Interceptor = (next) => async (req) => {
    const end = duration.startTimer({ rpc: req.method.name });
    const grpc = grpcLabelsOf(req.method);
    started.inc(grpc);
    // A start time, not startTimer's closure: an open stream holds `ended` and what it keeps.
    const startedAt = performance.now();
    const rpc = req.method.name;
    const ended = (err: unknown): void => {
      const code = err === undefined ? "OK" : codeName(err);
      handled.inc({ ...grpc, grpc_code: code });
      requests.inc({ rpc, code });
      handling.observe(grpc, (performance.now() - startedAt) / 1000);
    };
    // (every count with the call's final code, a stream's when it ends: a watch refused as it opens is
    // not OK; ticketqueue_rpc_duration_seconds times a stream until its answer starts, as before)
    try {
      return await whenCallEnds(req, next, ended);
    } finally {
      end();
    }
  };

  const refused = (method: DescMethod, err: unknown): void => {
    const code = codeName(err);
    // A client that left before its call began made no call (a gRPC stream reset mid-body is not seen as one either).
    if (code === "CANCELLED") return;
    const grpc = grpcLabelsOf(method);
    started.inc(grpc);
    handled.inc({ ...grpc, grpc_code: code });
    requests.inc({ rpc: method.name, code });
  };

  return {
    registry,
    interceptor,
    refused,
    exposition: () => (cluster.isWorker ? askPrimary() : registry.metrics()),
    observeOpenStreams: (count) => (openStreams = count),
    observeRequestBodies: (read) => (requestBodies = read),
  };
}

/** go-grpc-prometheus's grpc_type values. */
const GRPC_TYPES = { unary: "unary", server_streaming: "server_stream", client_streaming: "client_stream", bidi_streaming: "bidi_stream" } as const;

function grpcLabelsOf(method: DescMethod): { grpc_type: string; grpc_service: string; grpc_method: string } {
  return { grpc_type: GRPC_TYPES[method.methodKind], grpc_service: method.parent.typeName, grpc_method: method.name };
}

/** The canonical gRPC code names, by number (Connect's own names are camel case, and spell Canceled). */
const CODE_NAMES = [
  "OK",
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION",
  "ABORTED",
  "OUT_OF_RANGE",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "DATA_LOSS",
  "UNAUTHENTICATED",
] as const;

function codeName(err: unknown): string {
  return CODE_NAMES[ConnectError.from(err).code] ?? "UNKNOWN";
}
