#!/usr/bin/env node
// protoc-gen-openapi: an OpenAPI 3.1 document for the REST gateway, from the same
// google.api.http rules the gateway routes by (run by buf generate, buf.gen.yaml).
// Written here: no generator for google.api.http to OpenAPI 3.1 exists on npm.
// Plain JavaScript, so that `npm run generate` runs it before anything is built.
//
// The schemas are the JSON the gateway writes and reads: proto field names,
// implicit-presence fields always present, enums by name, 64-bit integers as
// strings, Timestamps as RFC 3339 strings, Durations as "1.5s".
import { create, createFileRegistry, getOption, ScalarType } from "@bufbuild/protobuf";
import { CodeGeneratorResponseSchema, CodeGeneratorResponse_Feature, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { getComments, runNodeJs } from "@bufbuild/protoplugin";

/** HTTP statuses of the error mapping (src/rpc/errors.ts), as the gateway answers them. */
const ERRORS = {
  400: "INVALID_ARGUMENT or FAILED_PRECONDITION: the message says which field or why",
  401: "UNAUTHENTICATED: a credential (ticket, token) is missing or not valid",
  403: "PERMISSION_DENIED: a valid credential for someone or something else",
  404: "NOT_FOUND: no such event, user entry or route",
  413: "The request body is too large",
  429: "RESOURCE_EXHAUSTED: a rate limit or a bound (max_waiting, open streams); see Retry-After",
  503: "UNAVAILABLE: Redis does not answer, or the server is stopping; retry",
};

function comment(desc) {
  const c = getComments(desc).leading?.trim();
  return c ? c.replace(/\n /g, "\n") : undefined;
}

function plugin() {
  return {
    name: "protoc-gen-openapi",
    version: "v1",
    run(request) {
      const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: request.protoFile }));
      const http = registry.getExtension("google.api.http");
      const admin = registry.getExtension("ticketqueue.v1.admin");
      const schemas = {};
      const paths = {};
      const wanted = new Set(request.fileToGenerate);
      for (const file of registry.files) {
        if (!wanted.has(file.proto.name)) continue;
        for (const service of file.services) {
          for (const method of service.methods) {
            if (!http) continue;
            const rule = getOption(method, http);
            if (!rule || rule.pattern.case === undefined) continue;
            const isAdmin = admin ? getOption(method, admin) === true : false;
            for (const [i, binding] of [rule, ...rule.additionalBindings].entries()) {
              addOperation(paths, schemas, service, method, binding, isAdmin, i === 0 ? method.name : `${method.name}_${i + 1}`);
            }
          }
        }
      }
      schemas.Error = {
        type: "object",
        description: "Every error, with the RPC's code in lower snake case (as Connect writes it) and a message for people.",
        properties: {
          code: { type: "string", examples: ["invalid_argument"] },
          message: { type: "string" },
          details: { type: "array", items: { type: "object" } },
        },
        required: ["code", "message"],
      };
      const document = {
        openapi: "3.1.0",
        info: {
          title: "ticket-queue REST gateway",
          version: "v1",
          description:
            "The REST paths of ticketqueue.v1.TicketQueueService (generated from proto/ by protoc-gen-openapi). The same RPCs are served over gRPC, gRPC-web and Connect on the same port.",
        },
        paths,
        components: {
          schemas,
          securitySchemes: {
            adminToken: { type: "apiKey", in: "header", name: "x-token", description: "ADMIN_TOKEN" },
            adminJwt: { type: "http", scheme: "bearer", bearerFormat: "JWT", description: "An admin JWT (ADMIN_JWT_PUBLIC_KEY or ADMIN_JWKS_URL)" },
          },
        },
      };
      // buf runs the plugin once per input (proto/, and the standard services'): only ours has REST routes.
      return create(CodeGeneratorResponseSchema, {
        supportedFeatures: BigInt(CodeGeneratorResponse_Feature.PROTO3_OPTIONAL),
        file: Object.keys(paths).length === 0 ? [] : [{ name: "openapi.json", content: `${JSON.stringify(document, null, 2)}\n` }],
      });
    },
  };
}

function addOperation(paths, schemas, service, method, binding, isAdmin, operationId) {
  const verb = binding.pattern.case;
  const template = binding.pattern.value;
  const pathParams = [...template.matchAll(/\{([\w.]+)\}/g)].map((m) => m[1]);
  const path = template;
  const input = method.input;
  const bodyFields = binding.body === "*" ? input.fields.filter((f) => !pathParams.includes(f.name)) : [];
  const queryFields = binding.body === "" ? input.fields.filter((f) => !pathParams.includes(f.name) && f.fieldKind !== "message" && f.fieldKind !== "map") : [];
  const parameters = [
    ...pathParams.map((name) => ({ name, in: "path", required: true, schema: { type: "string" }, description: fieldComment(input, name) })),
    ...queryFields.map((f) => ({ name: f.name, in: "query", required: false, schema: fieldSchema(f, schemas), description: comment(f) })),
  ].map(dropUndefined);
  const operation = dropUndefined({
    operationId,
    summary: method.name,
    description: comment(method),
    tags: [service.name],
    parameters: parameters.length > 0 ? parameters : undefined,
    requestBody:
      binding.body === "*"
        ? {
            required: true,
            content: { "application/json": { schema: objectSchema(input, schemas, bodyFields, false) } },
          }
        : undefined,
    responses: {
      200:
        method.methodKind === "server_streaming"
          ? {
              description: `A stream of ${method.output.typeName} as Server-Sent Events (event: status, data: the message as JSON; event: end; event: error)`,
              content: { "text/event-stream": { schema: { type: "string" } } },
            }
          : { description: method.output.typeName, content: { "application/json": { schema: ref(method.output, schemas) } } },
      ...Object.fromEntries(Object.entries(ERRORS).map(([status, description]) => [status, { description, content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } } }])),
    },
    security: isAdmin ? [{ adminToken: [] }, { adminJwt: [] }] : undefined,
  });
  paths[path] ??= {};
  // Two RPCs never share a verb and path; the operationId keeps bindings apart.
  paths[path][verb] = operation;
}

function fieldComment(message, name) {
  const field = message.fields.find((f) => f.name === name);
  return field ? comment(field) : undefined;
}

function dropUndefined(o) {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

function ref(message, schemas) {
  const wkt = wellKnown(message);
  if (wkt) return wkt;
  const name = message.typeName;
  if (!(name in schemas)) {
    schemas[name] = {}; // (a placeholder: messages may refer to themselves)
    schemas[name] = objectSchema(message, schemas, message.fields, true);
  }
  return { $ref: `#/components/schemas/${name}` };
}

function objectSchema(message, schemas, fields, asResponse) {
  const properties = {};
  const required = [];
  for (const f of fields) {
    properties[f.name] = dropUndefined({ ...fieldSchema(f, schemas), description: comment(f) });
    // The gateway writes every implicit-presence field, defaults included; optional and message fields only when set.
    if (asResponse && f.presence !== 1 && !(f.fieldKind === "message")) required.push(f.name);
  }
  return dropUndefined({ type: "object", description: comment(message), properties, required: required.length > 0 ? required : undefined, additionalProperties: false });
}

function fieldSchema(f, schemas) {
  switch (f.fieldKind) {
    case "scalar":
      return scalarSchema(f.scalar);
    case "enum":
      return { type: "string", enum: f.enum.values.map((v) => v.name) };
    case "message":
      return ref(f.message, schemas);
    case "list":
      return {
        type: "array",
        items: f.listKind === "scalar" ? scalarSchema(f.scalar) : f.listKind === "enum" ? { type: "string", enum: f.enum.values.map((v) => v.name) } : ref(f.message, schemas),
      };
    case "map":
      return {
        type: "object",
        additionalProperties: f.mapKind === "scalar" ? scalarSchema(f.scalar) : f.mapKind === "enum" ? { type: "string", enum: f.enum.values.map((v) => v.name) } : ref(f.message, schemas),
      };
  }
  throw new Error(`field ${f.name}: unknown kind`);
}

function scalarSchema(scalar) {
  switch (scalar) {
    case ScalarType.STRING:
      return { type: "string" };
    case ScalarType.BOOL:
      return { type: "boolean" };
    case ScalarType.BYTES:
      return { type: "string", contentEncoding: "base64" };
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return { type: "number" };
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return { type: "integer", format: "int32" };
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return { type: "integer", format: "int64", minimum: 0, maximum: 4294967295 };
    default:
      // 64-bit integers are JSON strings (proto3 JSON).
      return { type: "string", pattern: "^-?[0-9]+$", format: scalar === ScalarType.UINT64 || scalar === ScalarType.FIXED64 ? "uint64" : "int64" };
  }
}

function wellKnown(message) {
  switch (message.typeName) {
    case "google.protobuf.Timestamp":
      return { type: "string", format: "date-time", description: "RFC 3339, UTC" };
    case "google.protobuf.Duration":
      return { type: "string", pattern: "^-?[0-9]+(\\.[0-9]+)?s$", description: "seconds with up to 9 decimals and a trailing s, e.g. 12.5s" };
    default:
      return undefined;
  }
}

runNodeJs(plugin());
