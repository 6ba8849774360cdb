import { readFileSync } from "node:fs";
import { fromJson, getOption, ScalarType, toJsonString, type DescMessage, type DescMethod, type JsonObject, type JsonValue, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createConnectRouter } from "@connectrpc/connect";
import { universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import type { UniversalHandler } from "@connectrpc/connect/protocol";
import { http as httpRule } from "../../gen/google/api/annotations_pb.js";
import type { HttpRule } from "../../gen/google/api/http_pb.js";
import { peerContext } from "../rpc/caller.js";
import type { BodyBudget } from "../server/body-budget.js";
import { BodyTooLarge, headerRecord, readBody, ResponseSignals, sendConnectError, wasHead } from "../server/http-body.js";
import { toConnectError } from "../rpc/errors.js";
import type { RpcSurface } from "../rpc/rpc-surface.js";
import { createServerStreamCalls, ServerStreamRequest, type ServerStreamTarget } from "../rpc/stream-calls.js";
import { CallRequest, createUnaryCalls, type UnaryTarget } from "../rpc/unary-calls.js";
import { matchPath, parsePathTemplate, type PathTemplate } from "./path-template.js";
import { sendServerSentEvents } from "./server-sent-events.js";

type NodeRequest = Parameters<typeof universalRequestFromNodeRequest>[0];
type NodeResponse = Parameters<typeof universalResponseToNodeResponse>[1];

interface Route {
  verb: string;
  template: PathTemplate;
  /** "*" (the whole request is the body), a field name, or "" (no body). */
  body: string;
  handler: UniversalHandler;
  /** The RPC's URL as its handlers see it (Connect's request path). */
  rpcUrl: string;
  /** A unary RPC's interceptors and handler, called without the router (the fast path). */
  unary: UnaryTarget | undefined;
  /** A server-streaming RPC's interceptors and handler, answered as Server-Sent Events (always called without the router). */
  stream: ServerStreamTarget | undefined;
}

export interface RestGatewayOptions {
  /** Largest request body; a larger one is answered 413. */
  maxBodyBytes: number;
  /** What unfinished bodies may hold together, shared with the server's other paths. */
  bodyBudget: BodyBudget;
  /** Unary routes call their interceptors and handler directly (default); false: through the router (streams are always called directly). */
  unaryFastPath?: boolean;
}

// The router's REST JSON: proto field names, defaults always present, unknown fields refused.
/** Where the OpenAPI document of the REST routes is served. */
export const OPENAPI_PATH = "/openapi.json";
const OPENAPI = readFileSync(new URL("../../gen/openapi/openapi.json", import.meta.url));

const READ_JSON = { ignoreUnknownFields: false };
const WRITE_JSON = { useProtoFieldName: true, alwaysEmitImplicit: true };

/**
 * REST transcoding driven by the proto's google.api.http rules, over the RPC
 * surface: a REST request becomes the RPC's request message, and the RPC is
 * called straight through its interceptors (Connect's handler would add
 * per-call abort controllers and a JSON round trip, and for server streams,
 * answered as Server-Sent Events, a pipeline of async iterables per stream);
 * `unaryFastPath: false` sends unary calls through a router of the same
 * services instead. Either way validation, auth, handlers and error mapping are
 * exactly the RPCs'; REST JSON differs only in its shape (proto field names,
 * defaults always present, unknown fields refused), and errors come back as
 * Connect's JSON error with its HTTP status (400, 401, 403, 404, 429, 503, ...).
 */
export function createRestGateway(rpc: RpcSurface, options: RestGatewayOptions) {
  const router = createConnectRouter({
    grpc: false,
    grpcWeb: false,
    interceptors: [...rpc.interceptors],
    readMaxBytes: options.maxBodyBytes,
    jsonOptions: { ...READ_JSON, ...WRITE_JSON },
  });
  rpc.routes(router);
  const unaryCalls = options.unaryFastPath === false ? new Map<DescMethod, UnaryTarget>() : createUnaryCalls(rpc.entries, rpc.interceptors, "connect");
  const streamCalls = createServerStreamCalls(rpc.entries, rpc.interceptors, "connect");
  const routes = router.handlers.flatMap((handler) => routesOf(handler, unaryCalls, streamCalls));
  // Compiled once and indexed by method: a request is matched against its method's routes only.
  const byVerb = new Map<string, Route[]>();
  for (const route of routes) byVerb.set(route.verb, [...(byVerb.get(route.verb) ?? []), route]);

  return async function restGateway(req: NodeRequest, res: NodeResponse): Promise<void> {
    try {
      const url = requestUrl(req.url);
      const verb = (req.method ?? "GET").toLowerCase();
      // The document of these routes, generated from the same rules (gen/openapi, by buf generate).
      if (url.pathname === OPENAPI_PATH && (verb === "get" || verb === "head")) {
        res.writeHead(200, { "content-type": "application/json", "content-length": OPENAPI.length, "cache-control": "no-cache" });
        if (verb === "get") res.end(OPENAPI);
        else res.end();
        return;
      }
      const match = matchRoute(byVerb.get(verb) ?? [], url.pathname);
      if (!match) {
        // Read the unread body first: answering before it is consumed makes Node
        // close a kept-alive HTTP/1.1 connection under the client's next request.
        await readBody(req, options.maxBodyBytes, options.bodyBudget);
        // A miss only: which other methods this path has, for 405 and its Allow header.
        const others = routes.filter((route) => matchPath(route.template, url.pathname) !== undefined);
        if (others.length > 0) {
          const allow = others.map((route) => route.verb.toUpperCase()).join(", ");
          return sendConnectError(res, new ConnectError(`${verb.toUpperCase()} is not allowed on ${url.pathname}; use ${allow}`, Code.Unimplemented), { status: 405, headers: { allow }, json: WRITE_JSON });
        }
        return sendConnectError(res, new ConnectError(`no route for ${verb.toUpperCase()} ${url.pathname}`, Code.NotFound), { json: WRITE_JSON });
      }
      const { route, vars } = match;
      // A HEAD would have to open the watch to answer as its GET would (its ticket and
      // event are checked as it opens), only to close it: a live stream takes GET only.
      if (route.stream && wasHead(req)) {
        await readBody(req, options.maxBodyBytes, options.bodyBudget);
        return sendConnectError(res, new ConnectError("HEAD is not served on a live stream; use GET", Code.Unimplemented), { status: 405, headers: { allow: "GET" }, json: WRITE_JSON });
      }
      let json: JsonObject;
      let message: MessageShape<DescMessage> | undefined;
      try {
        json = requestMessage(route, vars, url.searchParams, (await readBody(req, options.maxBodyBytes, options.bodyBudget)).toString("utf8"));
        const target = route.unary ?? route.stream;
        if (target) message = requestOf(target.method, json);
      } catch (err: unknown) {
        // Refused before any interceptor saw the call: counted as they count one.
        rpc.refused(route.handler.method, restError(err));
        throw err;
      }
      const header = forwardedHeaders(req, route.stream ? "application/connect+json" : "application/json");
      if (route.unary && message) return await serveUnary(route.unary, route.rpcUrl, message, header, req, res);
      if (route.stream && message) return await serveStream(route.stream, route.rpcUrl, message, header, req, res);
      const response = await route.handler({
        httpVersion: req.httpVersion,
        method: "POST",
        url: route.rpcUrl,
        header,
        body: json,
        signal: new ResponseSignals(res).signal(),
        contextValues: peerContext(req.socket.remoteAddress),
      });
      await universalResponseToNodeResponse(response, res);
    } catch (err: unknown) {
      if (err instanceof BodyTooLarge) {
        // The rest of the body is not read: tell HTTP/1.1 clients not to reuse the connection.
        sendConnectError(res, restError(err), { status: 413, headers: req.httpVersionMajor === 1 ? { connection: "close" } : {}, json: WRITE_JSON });
      } else {
        // An error before the body was read: HTTP/1.1 clients must not reuse the connection.
        sendConnectError(res, restError(err), { headers: req.httpVersionMajor === 1 && !req.readableEnded ? { connection: "close" } : {}, json: WRITE_JSON });
      }
    }
  };
}

/** What a REST request failed with, as the RPCs' errors: a body over the limit is RESOURCE_EXHAUSTED (answered 413). */
function restError(err: unknown): ConnectError {
  return err instanceof BodyTooLarge ? new ConnectError(err.message, Code.ResourceExhausted) : toConnectError(err);
}

function matchRoute(routes: readonly Route[], path: string): { route: Route; vars: Map<string, string | ConnectError> } | undefined {
  for (const route of routes) {
    const vars = matchPath(route.template, path);
    if (vars) return { route, vars };
  }
  return undefined;
}

/** The request target's path as sent ("//x" is a path here, not a host) and its query. */
function requestUrl(target: string | undefined): { pathname: string; searchParams: URLSearchParams } {
  const path = target ?? "/";
  if (!path.startsWith("/")) throw new ConnectError("the request target must be a path", Code.InvalidArgument);
  const mark = path.indexOf("?");
  const pathname = mark < 0 ? path : path.slice(0, mark);
  // Routed on the path as sent. URL parsing would resolve a dot segment ("..", "%2e%2e") or a
  // backslash into another path, around a front proxy's rules for the path it saw, and drop a
  // fragment (no client sends one): refused.
  if (/[\\#]/.test(pathname) || pathname.split("/").some((segment) => /^(?:\.|%2e){1,2}$/i.test(segment))) {
    throw new ConnectError("the request path has a dot segment, a backslash or a fragment", Code.InvalidArgument);
  }
  return { pathname, searchParams: new URLSearchParams(mark < 0 ? "" : path.slice(mark + 1)) };
}

function routesOf(handler: UniversalHandler, unaryCalls: ReadonlyMap<DescMethod, UnaryTarget>, streamCalls: ReadonlyMap<DescMethod, ServerStreamTarget>): Route[] {
  if (handler.method.methodKind !== "unary" && handler.method.methodKind !== "server_streaming") return [];
  const rule = getOption(handler.method, httpRule);
  const streaming = handler.method.methodKind === "server_streaming";
  const calls = { unary: streaming ? undefined : unaryCalls.get(handler.method), stream: streaming ? streamCalls.get(handler.method) : undefined };
  // (a stream is served only straight: the router path answers no Server-Sent Events)
  if (streaming && !calls.stream) return [];
  const rpcUrl = `http://localhost${handler.requestPath}`;
  return [rule, ...rule.additionalBindings].flatMap((binding) => routeOf(handler, binding, rpcUrl, calls));
}

function routeOf(handler: UniversalHandler, rule: HttpRule, rpcUrl: string, calls: Pick<Route, "unary" | "stream">): Route[] {
  const { pattern } = rule;
  if (pattern.case === undefined) return [];
  const [verb, path] = pattern.case === "custom" ? [pattern.value.kind.toLowerCase(), pattern.value.path] : [pattern.case, pattern.value];
  return [{ verb, template: parsePathTemplate(path), body: rule.body, handler, rpcUrl, ...calls }];
}

/** The request message as proto JSON: the body's text, then path variables, then query parameters. */
function requestMessage(route: Route, vars: Map<string, string | ConnectError>, query: URLSearchParams, text: string): JsonObject {
  let message: JsonObject = {};
  if (route.body !== "" && text.trim() !== "") {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err: unknown) {
      throw new ConnectError(`request body is not valid JSON: ${err instanceof Error ? err.message : String(err)}`, Code.InvalidArgument);
    }
    if (route.body === "*") {
      if (!isJsonObject(parsed)) throw new ConnectError("request body must be a JSON object", Code.InvalidArgument);
      message = parsed;
    } else {
      message = { [route.body]: parsed as JsonValue };
    }
  } else if (route.body === "" && text.trim() !== "") {
    throw new ConnectError(`${route.verb.toUpperCase()} ${route.template.source} takes no request body`, Code.InvalidArgument);
  }
  const { method } = route.handler;
  for (const [field, value] of vars) {
    if (value instanceof ConnectError) throw value;
    message[field] = typedValue(method, field, value);
  }
  if (route.body !== "*") {
    // A field the path or the body binds is not a query parameter (google.api.http): else
    // "/v1/events/a?event_id=b" would act on b where logs and proxies see a.
    const bound = new Set([...vars.keys(), route.body].map((name) => fieldOf(method, name)).filter((f) => f !== undefined));
    for (const key of new Set(query.keys())) {
      const field = fieldOf(method, key);
      if (field && bound.has(field)) throw new ConnectError(`${key} is given by the ${vars.has(field.name) ? "path" : "body"}; it cannot be a query parameter too`, Code.InvalidArgument);
      const values = query.getAll(key).map((v) => typedValue(method, key, v));
      message[key] = isRepeated(method, key) ? values : (values[values.length - 1] ?? "");
    }
  }
  return message;
}

function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function fieldOf(method: DescMethod, name: string) {
  return method.input.fields.find((f) => f.name === name || f.jsonName === name);
}

function isRepeated(method: DescMethod, name: string): boolean {
  return fieldOf(method, name)?.fieldKind === "list";
}

const INTEGER_TYPES = new Set([
  ScalarType.INT32,
  ScalarType.INT64,
  ScalarType.UINT32,
  ScalarType.UINT64,
  ScalarType.SINT32,
  ScalarType.SINT64,
  ScalarType.FIXED32,
  ScalarType.FIXED64,
  ScalarType.SFIXED32,
  ScalarType.SFIXED64,
]);

/**
 * Path and query values are text; booleans must become JSON booleans (numbers
 * may stay quoted). An integer is written in decimal digits: proto JSON would
 * read "0x10", "1e3" or " 7" as numbers too, which no one means in a URL.
 */
function typedValue(method: DescMethod, name: string, value: string): JsonValue {
  const field = fieldOf(method, name);
  const scalar = field?.fieldKind === "scalar" || field?.fieldKind === "list" ? field.scalar : undefined;
  if (scalar === ScalarType.BOOL) {
    if (value === "true" || value === "false") return value === "true";
    throw new ConnectError(`${name} must be true or false`, Code.InvalidArgument);
  }
  if (scalar !== undefined && INTEGER_TYPES.has(scalar) && !/^-?\d+$/.test(value)) throw new ConnectError(`${name} must be a whole number in decimal digits`, Code.InvalidArgument);
  return value;
}

const DROPPED_HEADERS = new Set(["content-type", "content-length", "content-encoding", "transfer-encoding", "connection", "keep-alive", "host"]);

function forwardedHeaders(req: NodeRequest, contentType: string): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (name.startsWith(":") || DROPPED_HEADERS.has(name) || value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) headers.append(name, v);
  }
  headers.set("content-type", contentType);
  return headers;
}

/** The request message from its REST JSON, with the router's own options; JSON it cannot be is InvalidArgument. */
function requestOf<I extends DescMessage>(method: { input: I }, json: JsonObject): MessageShape<I> {
  try {
    return fromJson(method.input, json, READ_JSON);
  } catch (err: unknown) {
    throw ConnectError.from(err, Code.InvalidArgument);
  }
}

/**
 * A server stream as Server-Sent Events, its interceptors and handler called
 * straight (Connect's JSON streaming pipeline held about 39 KB per open stream).
 * Errors before the first message go to the gateway's error answer.
 */
async function serveStream(target: ServerStreamTarget, url: string, message: MessageShape<DescMessage>, header: Headers, req: NodeRequest, res: NodeResponse): Promise<void> {
  const { service, method, call } = target;
  // Before the call: a client that leaves while the interceptors run is seen by the writer too.
  const signals = new ResponseSignals(res);
  const response = await call(new ServerStreamRequest(service, method, url, header, peerContext(req.socket.remoteAddress), message, signals));
  // (typed messages already: createServerStreamCalls makes them)
  const toJson = (out: object): string => toJsonString(method.output, out as MessageShape<typeof method.output>, WRITE_JSON);
  sendServerSentEvents(response.message as AsyncIterable<object>, { toJson, jsonOptions: WRITE_JSON, signals, header: response.header }, res, (err) => sendConnectError(res, err, { json: WRITE_JSON }));
}

/**
 * A unary RPC without the router: the JSON becomes the request message with the
 * router's own options, the call runs the same interceptors and handler, and
 * the answer is what Connect's unary JSON response would be (response trailers
 * as `trailer-` headers). Errors go to the gateway's error answer.
 */
async function serveUnary(target: UnaryTarget, url: string, message: MessageShape<DescMessage>, header: Headers, req: NodeRequest, res: NodeResponse): Promise<void> {
  const { service, method, call } = target;
  const response = await call(new CallRequest(service, method, url, header, peerContext(req.socket.remoteAddress), message, new ResponseSignals(res)));
  const body = Buffer.from(toJsonString(method.output, response.message, WRITE_JSON));
  res.writeHead(200, { ...headerRecord(response.header, response.trailer), "content-type": "application/json", "content-length": body.length });
  res.end(body);
}
