import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary, type DescMethodUnary, type DescService, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";

/** Per-call options of the grpc-js client. */
export interface GrpcJsCallOptions {
  metadata?: grpc.Metadata;
  deadline?: Date;
}

/** A promise-returning method per unary RPC of `S`, typed from the generated descriptors. */
export type GrpcJsClient<S extends DescService> = {
  [K in keyof S["method"]]: S["method"][K] extends DescMethodUnary<infer I, infer O>
    ? (request: MessageInitShape<I>, options?: GrpcJsCallOptions) => Promise<MessageShape<O>>
    : never;
} & { close(): void };

/**
 * The grpc-js service definition of a protobuf-es service: paths and
 * (de)serializers come from the generated descriptors, so no .proto loading.
 * Use it with `grpc.makeGenericClientConstructor` or `server.addService`.
 */
export function grpcJsServiceDefinition(service: DescService): grpc.ServiceDefinition {
  const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const method of service.methods) {
    definition[method.localName] = {
      path: `/${service.typeName}/${method.name}`,
      requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
      responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
      requestSerialize: (message) => Buffer.from(toBinary(method.input, create(method.input, message as MessageInitShape<typeof method.input>))),
      requestDeserialize: (bytes) => fromBinary(method.input, bytes),
      responseSerialize: (message) => Buffer.from(toBinary(method.output, create(method.output, message as MessageInitShape<typeof method.output>))),
      responseDeserialize: (bytes) => fromBinary(method.output, bytes),
    };
  }
  return definition;
}

/**
 * A `@grpc/grpc-js` client for the unary RPCs of `service`, e.g.
 * `createGrpcJsClient(TicketQueueService, "localhost:8000")`. Failures reject
 * with grpc-js's ServiceError (its `code` is the gRPC status).
 */
export function createGrpcJsClient<S extends DescService>(
  service: S,
  address: string,
  credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
  channelOptions: grpc.ChannelOptions = {},
): GrpcJsClient<S> {
  const Client = grpc.makeGenericClientConstructor(grpcJsServiceDefinition(service), service.typeName);
  const client = new Client(address, credentials, channelOptions);
  const methods: Record<string, unknown> = { close: () => client.close() };
  for (const method of service.methods) {
    if (method.methodKind !== "unary") continue;
    const path = `/${service.typeName}/${method.name}`;
    methods[method.localName] = (request: MessageInitShape<typeof method.input>, options: GrpcJsCallOptions = {}) =>
      new Promise((resolve, reject) => {
        client.makeUnaryRequest(
          path,
          (message: MessageShape<typeof method.input>) => Buffer.from(toBinary(method.input, message)),
          (bytes: Buffer) => fromBinary(method.output, bytes),
          create(method.input, request),
          options.metadata ?? new grpc.Metadata(),
          options.deadline ? { deadline: options.deadline } : {},
          (err, response) => (err ? reject(err) : resolve(response)),
        );
      });
  }
  return methods as GrpcJsClient<S>;
}
