import { create, toBinary, type DescMessage, type MessageInitShape } from "@bufbuild/protobuf";
import {
  GetStatusRequestSchema,
  HealthRequestSchema,
  ProcessQueueRequestSchema,
  ReserveRequestSchema,
  ResetRequestSchema,
} from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import type { LoadRequest } from "./load-generator.js";

export type Transport = "grpc" | "connect-json" | "rest";

const SERVICE = "/ticketqueue.v1.TicketQueueService";

/** A gRPC length-prefixed message: flag byte, 4-byte length, protobuf bytes. */
export function grpcFrame<D extends DescMessage>(schema: D, init: MessageInitShape<D>): Buffer {
  const bytes = toBinary(schema, create(schema, init));
  const frame = Buffer.alloc(5 + bytes.length);
  frame.writeUInt32BE(bytes.length, 1);
  frame.set(bytes, 5);
  return frame;
}

const EMPTY_RESERVE = grpcFrame(ReserveRequestSchema, {});

/** Reserve with an empty user_id: the server makes a new user for every call. */
export function reserveNewUser(transport: Transport): LoadRequest {
  switch (transport) {
    case "grpc":
      return { kind: "grpc", path: `${SERVICE}/Reserve`, contentType: "application/grpc", body: EMPTY_RESERVE };
    case "connect-json":
      return { kind: "http", path: `${SERVICE}/Reserve`, contentType: "application/json", body: Buffer.from("{}") };
    case "rest":
      return { kind: "http", path: "/reserve", contentType: "application/json", body: Buffer.from("{}") };
  }
}

/**
 * The old load test's mix, by weight: reserve 4, status 3, health 2,
 * process_queue 1, reset 1. Reserves use ids mix-<i>; statuses ask for ids
 * reserved earlier in the run.
 */
export function mixed(transport: Transport, adminToken: string): (i: number) => LoadRequest {
  const admin = { "x-token": adminToken };
  return (i) => {
    const slot = i % 11;
    const userId = `mix-${slot < 4 ? i : Math.max(0, i - 11)}`;
    if (slot < 4) return call(transport, "Reserve", "POST", "/reserve", grpcFrame(ReserveRequestSchema, { userId }), { userId }, { user_id: userId });
    if (slot < 7) return call(transport, "GetStatus", "GET", `/status/${userId}`, grpcFrame(GetStatusRequestSchema, { userId }), { userId });
    if (slot < 9) return call(transport, "Health", "GET", "/health", grpcFrame(HealthRequestSchema, {}), {});
    if (slot < 10) return { ...call(transport, "ProcessQueue", "POST", "/process_queue", grpcFrame(ProcessQueueRequestSchema, {}), {}, {}), headers: admin };
    return { ...call(transport, "Reset", "POST", "/admin/reset", grpcFrame(ResetRequestSchema, {}), {}, {}), headers: admin };
  };
}

function call(transport: Transport, rpc: string, restMethod: string, restPath: string, frame: Buffer, connectJson: object, restBody?: object): LoadRequest {
  switch (transport) {
    case "grpc":
      return { kind: "grpc", path: `${SERVICE}/${rpc}`, contentType: "application/grpc", body: frame };
    case "connect-json":
      return { kind: "http", path: `${SERVICE}/${rpc}`, contentType: "application/json", body: Buffer.from(JSON.stringify(connectJson)) };
    case "rest":
      return { kind: "http", method: restMethod, path: restPath, contentType: "application/json", body: Buffer.from(restBody ? JSON.stringify(restBody) : "") };
  }
}
