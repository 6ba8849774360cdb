import { toBinary, type DescFile, type DescService } from "@bufbuild/protobuf";
import { nestedTypes } from "@bufbuild/protobuf/reflect";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { ServerReflection as ReflectionV1 } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ReflectionV1Alpha } from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";

/** The two reflection services; ServerReflectionInfo is the same in both. */
export const REFLECTION_SERVICES = [ReflectionV1, ReflectionV1Alpha] as const;

/** What a ServerReflectionRequest asks, in either version. */
type ReflectionQuery =
  | { case: "fileByFilename" | "fileContainingSymbol" | "listServices"; value: string }
  | { case: "fileContainingExtension"; value: { containingType: string; extensionNumber: number } }
  | { case: "allExtensionNumbersOfType"; value: string }
  | { case: undefined; value?: undefined };

/**
 * gRPC server reflection (grpc.reflection.v1 and v1alpha) over the generated
 * descriptors of the served services, so grpcurl, ghz and Postman need no .proto
 * files. connect-node has none; this is it, as plain Connect services.
 */
export function reflectionServices(served: readonly DescService[]): {
  v1: ServiceImpl<typeof ReflectionV1>;
  v1alpha: ServiceImpl<typeof ReflectionV1Alpha>;
} {
  const files = new Map<string, DescFile>();
  const addFile = (file: DescFile): void => {
    // DescFile.name lacks ".proto"; clients ask by the full file name.
    if (files.has(file.proto.name)) return;
    files.set(file.proto.name, file);
    file.dependencies.forEach(addFile);
  };
  served.forEach((s) => addFile(s.file));
  const bySymbol = new Map<string, DescFile>();
  const extensions = new Map<string, Map<number, DescFile>>();
  for (const file of files.values()) {
    for (const type of nestedTypes(file)) {
      bySymbol.set(type.typeName, file);
      if (type.kind === "service") for (const m of type.methods) bySymbol.set(`${type.typeName}.${m.name}`, file);
      if (type.kind === "extension") {
        const numbers = extensions.get(type.extendee.typeName) ?? new Map<number, DescFile>();
        numbers.set(type.number, file);
        extensions.set(type.extendee.typeName, numbers);
      }
    }
  }

  /**
   * The file and everything it imports that this stream has not sent yet (as
   * grpc-go does: clients add each file to one pool and refuse duplicates).
   */
  const withDependencies = (file: DescFile, seen: Set<string>): Uint8Array[] => {
    const out: Uint8Array[] = [];
    const visit = (f: DescFile): void => {
      if (seen.has(f.proto.name)) return;
      seen.add(f.proto.name);
      out.push(toBinary(FileDescriptorProtoSchema, f.proto));
      f.dependencies.forEach(visit);
    };
    visit(file);
    return out;
  };

  const notFound = (message: string) => ({ case: "errorResponse" as const, value: { errorCode: 5, errorMessage: message } });

  const answer = (query: ReflectionQuery, sent: Set<string>) => {
    switch (query.case) {
      case "listServices":
        return { case: "listServicesResponse" as const, value: { service: served.map((s) => ({ name: s.typeName })) } };
      case "fileByFilename": {
        const file = files.get(query.value);
        return file ? { case: "fileDescriptorResponse" as const, value: { fileDescriptorProto: withDependencies(file, sent) } } : notFound(`no file ${query.value}`);
      }
      case "fileContainingSymbol": {
        const file = bySymbol.get(query.value.replace(/^\./, ""));
        return file ? { case: "fileDescriptorResponse" as const, value: { fileDescriptorProto: withDependencies(file, sent) } } : notFound(`no symbol ${query.value}`);
      }
      case "fileContainingExtension": {
        const file = extensions.get(query.value.containingType)?.get(query.value.extensionNumber);
        return file
          ? { case: "fileDescriptorResponse" as const, value: { fileDescriptorProto: withDependencies(file, sent) } }
          : notFound(`no extension ${query.value.extensionNumber} of ${query.value.containingType}`);
      }
      case "allExtensionNumbersOfType":
        return {
          case: "allExtensionNumbersResponse" as const,
          value: { baseTypeName: query.value, extensionNumber: [...(extensions.get(query.value)?.keys() ?? [])] },
        };
      default:
        return { case: "errorResponse" as const, value: { errorCode: 3, errorMessage: "empty reflection request" } };
    }
  };

  async function* info(requests: AsyncIterable<{ host: string; messageRequest: ReflectionQuery }>) {
    const sent = new Set<string>();
    for await (const request of requests) {
      yield { validHost: request.host, originalRequest: request, messageResponse: answer(request.messageRequest, sent) };
    }
  }
  return {
    v1: { serverReflectionInfo: info },
    v1alpha: { serverReflectionInfo: info },
  };
}

