import { Metadata } from "@grpc/grpc-js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import {
  ReservationStatus,
  ReserveRequestSchema,
  ReserveResponseSchema,
  TicketQueueService,
} from "../../gen/ticketqueue/v1/ticket_queue_pb.js";
import { createGrpcJsClient } from "../../clients/grpc-js-client.js";

/** The answers every transport must give, in one shape (camelCase, status as enum name). */
export interface Answers {
  reserve(userId: string): Promise<Record<string, unknown>>;
  getStatus(userId: string): Promise<Record<string, unknown>>;
  processQueue(token?: string): Promise<Record<string, unknown>>;
  reset(token?: string): Promise<Record<string, unknown>>;
  health(): Promise<Record<string, unknown>>;
  close(): void;
}

/** A failed call, whatever the transport: the gRPC code, or the HTTP status for REST. */
export class CallFailed extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly httpStatus?: number,
  ) {
    super(message);
  }
}

function statusName(status: unknown): unknown {
  return typeof status === "number" ? ReservationStatus[status] : String(status).replace(/^RESERVATION_STATUS_/, "");
}

function plain(message: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(message)) {
    if (key === "$typeName") continue;
    out[key] = key === "status" ? statusName(value) : value;
  }
  return out;
}

function tokenHeader(token: string | undefined): Record<string, string> {
  return token === undefined ? {} : { "x-token": token };
}

function connectAnswers(transport: Transport): Answers {
  const client = createClient(TicketQueueService, transport);
  const wrap = async (call: () => Promise<object>): Promise<Record<string, unknown>> => {
    try {
      return plain(await call());
    } catch (err: unknown) {
      const e = ConnectError.from(err);
      throw new CallFailed(e.code, e.rawMessage);
    }
  };
  return {
    reserve: (userId) => wrap(() => client.reserve({ userId })),
    getStatus: (userId) => wrap(() => client.getStatus({ userId })),
    processQueue: (token) => wrap(() => client.processQueue({}, { headers: tokenHeader(token) })),
    reset: (token) => wrap(() => client.reset({}, { headers: tokenHeader(token) })),
    health: () => wrap(() => client.health({})),
    close: () => undefined,
  };
}

export function connectGrpc(baseUrl: string): Answers {
  return connectAnswers(createGrpcTransport({ baseUrl }));
}
export function connectGrpcWeb(baseUrl: string, httpVersion: "1.1" | "2"): Answers {
  return connectAnswers(createGrpcWebTransport({ baseUrl, httpVersion }));
}
export function connectProtocol(baseUrl: string, httpVersion: "1.1" | "2", useBinaryFormat: boolean): Answers {
  return connectAnswers(createConnectTransport({ baseUrl, httpVersion, useBinaryFormat }));
}

export function grpcJs(address: string): Answers {
  const client = createGrpcJsClient(TicketQueueService, address);
  const metadata = (token?: string): Metadata => {
    const md = new Metadata();
    if (token !== undefined) md.set("x-token", token);
    return md;
  };
  const wrap = async (call: () => Promise<object>): Promise<Record<string, unknown>> => {
    try {
      return plain(await call());
    } catch (err: unknown) {
      const e = err as { code?: number; details?: string };
      throw new CallFailed(e.code ?? -1, e.details ?? String(err));
    }
  };
  return {
    reserve: (userId) => wrap(() => client.reserve({ userId })),
    getStatus: (userId) => wrap(() => client.getStatus({ userId })),
    processQueue: (token) => wrap(() => client.processQueue({}, { metadata: metadata(token) })),
    reset: (token) => wrap(() => client.reset({}, { metadata: metadata(token) })),
    health: () => wrap(() => client.health({})),
    close: () => client.close(),
  };
}

const CODES: Record<string, number> = { invalid_argument: 3, not_found: 5, permission_denied: 7, resource_exhausted: 8, failed_precondition: 9, unavailable: 14, unauthenticated: 16 };

/** Plain fetch on the REST paths; snake_case answers turned camelCase for comparison. */
export function rest(baseUrl: string): Answers {
  const call = async (method: string, path: string, body?: unknown, token?: string): Promise<Record<string, unknown>> => {
    const res = await fetch(baseUrl + path, {
      method,
      headers: { ...(body === undefined ? {} : { "content-type": "application/json" }), ...tokenHeader(token) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = (await res.json()) as Record<string, unknown>;
    if (!res.ok) throw new CallFailed(CODES[String(json["code"])] ?? -1, String(json["message"]), res.status);
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(json)) {
      out[key.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase())] = key === "status" ? statusName(value) : value;
    }
    return out;
  };
  return {
    reserve: (userId) => call("POST", "/reserve", { user_id: userId }),
    getStatus: (userId) => call("GET", `/status/${encodeURIComponent(userId)}`),
    processQueue: (token) => call("POST", "/process_queue", undefined, token),
    reset: (token) => call("POST", "/admin/reset", undefined, token),
    health: () => call("GET", "/health"),
    close: () => undefined,
  };
}

/**
 * gRPC-web framed by hand over fetch (HTTP/1.1), as a browser library would:
 * a 5-byte frame header, the protobuf message, then a trailer frame in the body.
 */
export async function handFramedGrpcWebReserve(baseUrl: string, userId: string): Promise<{ grpcStatus: string; message?: ReturnType<typeof fromBinary<typeof ReserveResponseSchema>> }> {
  const payload = toBinary(ReserveRequestSchema, create(ReserveRequestSchema, { userId }));
  const frame = new Uint8Array(5 + payload.length);
  new DataView(frame.buffer).setUint32(1, payload.length);
  frame.set(payload, 5);
  const res = await fetch(`${baseUrl}/ticketqueue.v1.TicketQueueService/Reserve`, {
    method: "POST",
    headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
    body: frame,
  });
  const bytes = new Uint8Array(await res.arrayBuffer());
  let offset = 0;
  let message;
  let grpcStatus = res.headers.get("grpc-status") ?? "";
  while (offset + 5 <= bytes.length) {
    const flag = bytes[offset] ?? 0;
    const length = new DataView(bytes.buffer, bytes.byteOffset + offset + 1, 4).getUint32(0);
    const body = bytes.subarray(offset + 5, offset + 5 + length);
    if (flag & 0x80) {
      grpcStatus = /grpc-status:\s*(\d+)/i.exec(new TextDecoder().decode(body))?.[1] ?? grpcStatus;
    } else {
      message = fromBinary(ReserveResponseSchema, body);
    }
    offset += 5 + length;
  }
  return { grpcStatus, message };
}
