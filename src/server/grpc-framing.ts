import { fromBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { parseTimeout as parseConnectTimeout } from "@connectrpc/connect/protocol-connect";
import { parseTimeout } from "@connectrpc/connect/protocol-grpc";

// What the fast paths (lean-grpc.ts over HTTP/2 streams, lean-web.ts for gRPC-web
// and lean-connect.ts for Connect unary over node's request/response API) share:
// gRPC's framing, deadlines and request metadata.

/** A timer cannot wait past 2^31-1 ms (Node would fire it at once): a deadline that far off is none. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A grpc-timeout header's deadline in ms (`timeoutMs`), or its error when
 * malformed; none when absent or too far off for a timer (past MAX_TIMER_MS).
 */
export function grpcDeadline(value: string | null): { timeoutMs?: number; error?: ConnectError } {
  const { timeoutMs, error } = parseTimeout(value, Number.MAX_SAFE_INTEGER);
  if (error) return { error };
  return timeoutMs !== undefined && timeoutMs <= MAX_TIMER_MS ? { timeoutMs } : {};
}

/** A connect-timeout-ms header's deadline in ms, as grpcDeadline: its error when malformed, none when too far off for a timer. */
export function connectDeadline(value: string | null): { timeoutMs?: number; error?: ConnectError } {
  const { timeoutMs, error } = parseConnectTimeout(value, Number.MAX_SAFE_INTEGER);
  if (error) return { error };
  return timeoutMs !== undefined && timeoutMs <= MAX_TIMER_MS ? { timeoutMs } : {};
}

/** A length-prefixed message: the flags byte, the 4-byte length, the bytes. */
export function frameOf(flags: number, body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = flags;
  out.writeUInt32BE(body.length, 1);
  out.set(body, 5);
  return out;
}

/**
 * The request message of a unary or server-streaming call from its body, which
 * must be exactly one uncompressed frame (`protocol` names it in the error).
 */
export function decodeRequestFrame<D extends DescMessage>(schema: D, frame: Buffer, protocol: string): MessageShape<D> {
  if (frame.length < 5 || frame.readUInt32BE(1) !== frame.length - 5) {
    throw new ConnectError(`the request is not exactly one ${protocol} message`, Code.InvalidArgument);
  }
  if (((frame[0] ?? 0) & 1) === 1) throw new ConnectError("received a compressed message without grpc-encoding", Code.Internal);
  try {
    return fromBinary(schema, frame.subarray(5));
  } catch (err: unknown) {
    throw new ConnectError(`cannot decode ${schema.typeName}: ${err instanceof Error ? err.message : String(err)}`, Code.InvalidArgument);
  }
}

/** The request's metadata, without HTTP/2 pseudo-headers (which node's compatibility API lists too). */
export function requestHeader(headers: Record<string, string | string[] | undefined>): Headers {
  const header = new Headers();
  for (const name in headers) {
    const value = headers[name];
    if (name.charCodeAt(0) !== 58 /* ":" */ && value !== undefined) header.set(name, Array.isArray(value) ? value.join(", ") : value);
  }
  return header;
}

/** A header's one value (for parseTimeout), or null. */
export function headerValue(value: string | string[] | undefined): string | null {
  return typeof value === "string" ? value : null;
}
