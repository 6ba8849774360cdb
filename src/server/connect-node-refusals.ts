import { Code, ConnectError } from "@connectrpc/connect";
import { createAsyncIterable, type UniversalHandler, type UniversalServerResponse } from "@connectrpc/connect/protocol";
import { errorFromJsonBytes } from "@connectrpc/connect/protocol-connect";
import { trailerFlag, trailerParse } from "@connectrpc/connect/protocol-grpc-web";
import type { Refused } from "../rpc/rpc-surface.js";
import { ACCEPT_COMPRESSION } from "./compression.js";

/** Enough for any error connect-node writes; a larger answer is not read for its code. */
const MAX_ERROR_BYTES = 64 * 1024;
/** The flag of a compressed gRPC(-web) frame. */
const COMPRESSED_FLAG = 0x01;

/**
 * Counts an answer connect-node made before any interceptor ran, by the code it
 * carries: gRPC's grpc-status (a header, or a trailer: the body has ended by
 * then), gRPC-web's trailer frame, or a Connect unary error's JSON (inflated
 * when compressed). A body that had to be read for it is given back as it was.
 * Answers with no code (405, 415, a Connect stream's end message) are not counted.
 */
export async function countRefusal(handler: UniversalHandler, response: UniversalServerResponse, refused: Refused): Promise<UniversalServerResponse> {
  const status = response.header?.get("grpc-status") ?? response.trailer?.get("grpc-status");
  if (status !== null && status !== undefined) {
    refused(handler.method, new ConnectError("", Number(status) as Code));
    return response;
  }
  const type = response.header?.get("content-type") ?? "";
  const grpcWeb = type.startsWith("application/grpc-web");
  const connectError = response.status !== 200 && type === "application/json";
  if ((!grpcWeb && !connectError) || response.body === undefined) return response;
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of response.body) {
    chunks.push(chunk);
    size += chunk.byteLength;
  }
  const bytes = Buffer.concat(chunks);
  if (size <= MAX_ERROR_BYTES) {
    const code = await (grpcWeb ? grpcWebStatus(bytes, response.header?.get("grpc-encoding") ?? null) : connectErrorCode(bytes, response.header?.get("content-encoding") ?? null)).catch(() => undefined);
    if (code !== undefined) refused(handler.method, new ConnectError("", code));
  }
  return { ...response, body: createAsyncIterable([bytes]) };
}

/** The grpc-status of a gRPC-web body's trailer frame, if it has one. */
async function grpcWebStatus(body: Buffer, encoding: string | null): Promise<Code | undefined> {
  for (let at = 0; at + 5 <= body.length; ) {
    const flags = body[at] ?? 0;
    const length = body.readUInt32BE(at + 1);
    const frame = body.subarray(at + 5, at + 5 + length);
    at += 5 + length;
    if ((flags & trailerFlag) === 0) continue;
    const trailer = trailerParse((flags & COMPRESSED_FLAG) !== 0 ? await inflate(frame, encoding) : frame);
    const status = trailer.get("grpc-status");
    return status === null ? undefined : (Number(status) as Code);
  }
  return undefined;
}

/** The code of a Connect unary error's JSON body. */
async function connectErrorCode(body: Buffer, encoding: string | null): Promise<Code | undefined> {
  const json = encoding === null || encoding === "identity" ? body : await inflate(body, encoding);
  return errorFromJsonBytes(json, undefined, new ConnectError("", Code.Unknown)).code;
}

async function inflate(bytes: Uint8Array, encoding: string | null): Promise<Uint8Array> {
  const compression = ACCEPT_COMPRESSION.find((c) => c.name === encoding);
  if (!compression) throw new Error(`unknown encoding ${String(encoding)}`);
  return compression.decompress(bytes, MAX_ERROR_BYTES);
}
