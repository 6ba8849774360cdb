import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Span, type TextMapGetter } from "@opentelemetry/api";
import { ConnectError, type Interceptor } from "@connectrpc/connect";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, ConsoleSpanExporter, type SpanExporter } from "@opentelemetry/sdk-trace-base";
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { whenCallEnds } from "./call-end.js";

/**
 * OpenTelemetry traces, configured only by the standard OTEL_* variables and off
 * unless OTEL_EXPORTER_OTLP_ENDPOINT (or _TRACES_ENDPOINT) or OTEL_TRACES_EXPORTER
 * is set: then a span per RPC on every transport (continuing the caller's W3C
 * traceparent), a child span per Redis script (src/queue/scripts.ts), and trace
 * ids in the JSON logs. Off, nothing of it runs: no interceptor, no span.
 * (The OTLP exporter reads its endpoint, headers and timeout from the same
 * variables; BatchSpanProcessor reads OTEL_BSP_*.)
 */
export interface Tracing {
  shutdown(): Promise<void>;
}

let on = false;

export function tracingOn(): boolean {
  return on;
}

export function startTracing(env: NodeJS.ProcessEnv): Tracing | undefined {
  const exporterName = env["OTEL_TRACES_EXPORTER"]?.trim() || (env["OTEL_EXPORTER_OTLP_ENDPOINT"] || env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] ? "otlp" : "none");
  if (exporterName === "none" || env["OTEL_SDK_DISABLED"] === "true") return undefined;
  const exporter: SpanExporter = exporterName === "console" ? new ConsoleSpanExporter() : new OTLPTraceExporter();
  const provider = new NodeTracerProvider({
    // Our name unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES say otherwise (the later merge wins).
    resource: defaultResource().merge(resourceFromAttributes({ "service.name": "ticket-queue" })).merge(detectResources({ detectors: [envDetector] })),
    spanProcessors: [new BatchSpanProcessor(exporter)],
  });
  // The W3C trace context propagator and an AsyncLocalStorage context manager.
  provider.register();
  on = true;
  return { shutdown: () => provider.shutdown() };
}

const headerGetter: TextMapGetter<Headers> = {
  keys: (carrier) => [...carrier.keys()],
  get: (carrier, key) => carrier.get(key) ?? undefined,
};

/**
 * A server span per RPC, child of the caller's traceparent when it sent one, with
 * the RPC semantic conventions; a stream's span ends when the stream does.
 */
export function tracingInterceptor(): Interceptor {
  const tracer = trace.getTracer("ticket-queue");
  return (next) => async (req) => {
    const parent = propagation.extract(ROOT_CONTEXT, req.header, headerGetter);
    const contentType = req.header.get("content-type") ?? "";
    const span = tracer.startSpan(
      `${req.service.typeName}/${req.method.name}`,
      {
        kind: SpanKind.SERVER,
        attributes: {
          "rpc.system": contentType.startsWith("application/grpc") ? "grpc" : "connect_rpc",
          "rpc.service": req.service.typeName,
          "rpc.method": req.method.name,
        },
      },
      parent,
    );
    const active = trace.setSpan(parent, span);
    return whenCallEnds(req, (call) => context.with(active, () => next(call)), (err) => end(span, err));
  };
}

function end(span: Span, err: unknown): void {
  const code = err === undefined ? 0 : ConnectError.from(err).code;
  span.setAttribute("rpc.grpc.status_code", code);
  if (code !== 0) span.setStatus({ code: SpanStatusCode.ERROR, message: ConnectError.from(err).rawMessage });
  span.end();
}

/** The active span's ids, for the JSON logs (nothing when tracing is off or no span is active). */
export function traceIds(): { trace_id?: string; span_id?: string } {
  const span = trace.getActiveSpan();
  if (!span) return {};
  const { traceId, spanId } = span.spanContext();
  return { trace_id: traceId, span_id: spanId };
}
