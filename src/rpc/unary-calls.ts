import { create, type DescMethod, type DescMethodUnary, type DescService, type MessageShape } from "@bufbuild/protobuf";
import { createContextKey, type ContextValues, type HandlerContext, type Interceptor, type StreamRequest, type UnaryRequest, type UnaryResponse } from "@connectrpc/connect";

export type UnaryMethod = DescMethod & DescMethodUnary;
/** A unary RPC with every interceptor around its handler: what the fast paths call. */
export type UnaryCall = (req: UnaryRequest) => Promise<UnaryResponse>;
type UnaryImpl = (request: MessageShape<UnaryMethod["input"]>, context: HandlerContext) => Promise<object> | object;

export interface UnaryTarget {
  service: DescService;
  method: UnaryMethod;
  call: UnaryCall;
}

/** Where a fast path's call gets its abort signal: made on first use, most calls never ask. */
export interface SignalSource {
  signal(): AbortSignal;
}

// The call's deadline (epoch ms), carried from the transport to the handler's context.
export const deadlineKey = createContextKey<number | undefined>(undefined, { description: "call deadline" });

/**
 * Every unary method of the services with the interceptors wrapped around its
 * handler, once at start, for the fast paths (unary gRPC, REST) that skip
 * Connect's router. The same interceptors and handlers as the router's, so
 * auth, audit, limits, metrics and error mapping are the same on every path.
 */
export function createUnaryCalls(services: readonly { service: DescService; impl: object }[], interceptors: readonly Interceptor[], protocolName: string): Map<DescMethod, UnaryTarget> {
  const calls = new Map<DescMethod, UnaryTarget>();
  for (const { service, impl } of services) {
    for (const descMethod of service.methods) {
      if (descMethod.methodKind !== "unary") continue;
      const method = descMethod as UnaryMethod;
      const handler: unknown = Reflect.get(impl, method.localName);
      if (typeof handler !== "function") continue;
      const inner = async (req: UnaryRequest): Promise<UnaryResponse> => {
        const context = new CallContext(service, method, req, protocolName);
        const result = (await (handler as UnaryImpl).call(impl, req.message, context)) as Parameters<typeof create<typeof method.output>>[1];
        return { stream: false, service, method, header: context.responseHeader, trailer: context.responseTrailer, message: create(method.output, result) };
      };
      const call = interceptors.reduceRight<UnaryCall>((next, interceptor) => interceptor(next as Parameters<Interceptor>[0]) as UnaryCall, inner);
      calls.set(method, { service, method, call });
    }
  }
  return calls;
}

/**
 * A fast path's request: its abort signal is made on first use. Most unary
 * calls never ask; a pushed stream never does, as its writer stops it when the
 * client leaves (an AbortSignal with its listeners is about half a kilobyte
 * per open watch).
 */
export class SignalledRequest {
  constructor(readonly signals: SignalSource) {}

  get signal(): AbortSignal {
    return this.signals.signal();
  }
}

/** Where a call's signal comes from, without making it: a fast path's source, or the signal another transport (connect-node) made. */
export function signalsOf(call: { readonly signal: AbortSignal }): SignalSource {
  if (call instanceof SignalledRequest || call instanceof CallContext) return call.signals;
  const signal = call.signal;
  return { signal: () => signal };
}

/**
 * The call as interceptors see it (Connect's UnaryRequest). A class, not an
 * object literal: a literal with a getter gets a hidden class of its own on
 * every call (a new map and descriptor array each time, and slower property
 * reads in every interceptor after it).
 */
export class CallRequest extends SignalledRequest implements UnaryRequest {
  readonly stream = false;
  readonly requestMethod = "POST";

  constructor(
    readonly service: DescService,
    readonly method: UnaryMethod,
    readonly url: string,
    readonly header: Headers,
    readonly contextValues: ContextValues,
    readonly message: MessageShape<UnaryMethod["input"]>,
    signals: SignalSource,
  ) {
    super(signals);
  }
}

/**
 * The handler's view of the call (Connect's HandlerContext), built without
 * what unary handlers rarely touch: the signal and response metadata are made
 * on first use.
 */
export class CallContext implements HandlerContext {
  readonly requestMethod = "POST";
  readonly url: string;
  readonly requestHeader: Headers;
  readonly values: ContextValues;
  readonly timeoutMs: () => number | undefined;
  private header: Headers | undefined;
  private trailer: Headers | undefined;

  constructor(
    readonly service: DescService,
    readonly method: DescMethod,
    private readonly request: UnaryRequest | StreamRequest,
    readonly protocolName: string,
  ) {
    this.url = request.url;
    this.requestHeader = request.header;
    this.values = request.contextValues;
    const deadlineAt = request.contextValues.get(deadlineKey);
    this.timeoutMs = () => (deadlineAt === undefined ? undefined : deadlineAt - Date.now());
  }

  get signal(): AbortSignal {
    return this.request.signal;
  }

  /** Where the signal comes from, without making it (see SignalledRequest). */
  get signals(): SignalSource {
    return signalsOf(this.request);
  }

  get responseHeader(): Headers {
    return (this.header ??= new Headers());
  }

  get responseTrailer(): Headers {
    return (this.trailer ??= new Headers());
  }
}
