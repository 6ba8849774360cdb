import { create, type DescMethod, type DescMethodServerStreaming, type DescService, type MessageShape } from "@bufbuild/protobuf";
import type { ContextValues, HandlerContext, Interceptor, StreamRequest, StreamResponse } from "@connectrpc/connect";
import { CallContext, SignalledRequest, type SignalSource } from "./unary-calls.js";
import { passThrough } from "./stream-end.js";

export type ServerStreamMethod = DescMethod & DescMethodServerStreaming;
/** A server-streaming RPC with every interceptor around its handler. */
export type ServerStreamCall = (req: StreamRequest) => Promise<StreamResponse>;
type StreamImpl = (request: MessageShape<ServerStreamMethod["input"]>, context: HandlerContext) => AsyncIterable<object>;

export interface ServerStreamTarget {
  service: DescService;
  method: ServerStreamMethod;
  call: ServerStreamCall;
}

/**
 * Every server-streaming method with the interceptors wrapped around its
 * handler, for the fast paths (lean-grpc.ts, lean-web.ts): the same interceptors and
 * handlers as Connect's router, without its per-stream pipeline of async
 * iterables (about 37 KB of heap per open stream through connect-node).
 */
export function createServerStreamCalls(services: readonly { service: DescService; impl: object }[], interceptors: readonly Interceptor[], protocolName = "grpc"): Map<DescMethod, ServerStreamTarget> {
  const calls = new Map<DescMethod, ServerStreamTarget>();
  for (const { service, impl } of services) {
    for (const descMethod of service.methods) {
      if (descMethod.methodKind !== "server_streaming") continue;
      const method = descMethod as ServerStreamMethod;
      const handler: unknown = Reflect.get(impl, method.localName);
      if (typeof handler !== "function") continue;
      // Once per method, not per call: every open stream holds its layers' hooks.
      const toOutput = { map: (m: object) => create(method.output, m as Parameters<typeof create<typeof method.output>>[1]) };
      const inner = async (req: StreamRequest): Promise<StreamResponse> => {
        const context = new CallContext(service, method, req, protocolName);
        let input: MessageShape<ServerStreamMethod["input"]> | undefined;
        for await (const message of req.message) input = message as MessageShape<ServerStreamMethod["input"]>;
        const output = (handler as StreamImpl).call(impl, input ?? create(method.input), context);
        const message = passThrough(output, toOutput);
        return { stream: true, service, method, header: context.responseHeader, trailer: context.responseTrailer, message };
      };
      const call = interceptors.reduceRight<ServerStreamCall>((next, interceptor) => interceptor(next as Parameters<Interceptor>[0]) as ServerStreamCall, inner);
      calls.set(method, { service, method, call });
    }
  }
  return calls;
}

/** A server-streaming call's request as interceptors see it: the one input message, already read. */
export class ServerStreamRequest extends SignalledRequest implements StreamRequest {
  readonly stream = true;
  readonly requestMethod = "POST";
  readonly message: AsyncIterable<MessageShape<ServerStreamMethod["input"]>>;

  constructor(
    readonly service: DescService,
    readonly method: ServerStreamMethod,
    readonly url: string,
    readonly header: Headers,
    readonly contextValues: ContextValues,
    input: MessageShape<ServerStreamMethod["input"]>,
    signals: SignalSource,
  ) {
    super(signals);
    // Read once, by the handler's call, then let go: the request would otherwise be held as long as its stream is open.
    let unread: typeof input | undefined = input;
    this.message = {
      async *[Symbol.asyncIterator]() {
        const message = unread;
        unread = undefined;
        if (message !== undefined) yield message;
      },
    };
  }
}
