import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { TicketQueueService } from "../../gen/ticketqueue/v1/ticket_queue_pb.js";

export type QueueClient = Client<typeof TicketQueueService>;

/**
 * The generated client over gRPC-web to the origin that served the page. With
 * `adminToken`, every call carries it: a JWT as `Authorization: Bearer`, anything
 * else as `X-Token`.
 */
export function queueClient(adminToken?: () => string, userToken?: () => string | undefined): QueueClient {
  const interceptors: Interceptor[] = [];
  if (userToken) {
    // A traveller signed in by the operator's site: their token on every call.
    interceptors.push((next) => (req) => {
      const token = userToken();
      if (token) req.header.set("authorization", `Bearer ${token}`);
      return next(req);
    });
  }
  if (adminToken) {
    interceptors.push((next) => (req) => {
      const token = adminToken();
      if (/^[\w-]+\.[\w-]+\.[\w-]+$/.test(token)) req.header.set("authorization", `Bearer ${token}`);
      else if (token !== "") req.header.set("x-token", token);
      return next(req);
    });
  }
  return createClient(TicketQueueService, createGrpcWebTransport({ baseUrl: location.origin, interceptors }));
}

/** The server's own message for an RPC error (it says what to do). */
export function errorMessage(err: unknown): string {
  return ConnectError.from(err).rawMessage;
}

export function isCode(err: unknown, code: Code): boolean {
  return ConnectError.from(err).code === code;
}

/** Aborted by our own AbortController (not a failure to show). */
export function isCanceled(err: unknown): boolean {
  return isCode(err, Code.Canceled);
}

/**
 * Follows a server stream until `signal` aborts: reopens it after a failure or an
 * unexpected end, with pauses growing from 0.5 s to 10 s. `onMessage` returns
 * true when nothing more is to come; `onFailure` returns true to stop following.
 */
export async function keepFollowing<T>(
  open: (signal: AbortSignal) => AsyncIterable<T>,
  signal: AbortSignal,
  onMessage: (message: T) => boolean,
  onFailure: (err: unknown) => boolean,
): Promise<void> {
  let pauseMs = 500;
  while (!signal.aborted) {
    try {
      for await (const message of open(signal)) {
        pauseMs = 500;
        if (onMessage(message)) return;
      }
    } catch (err: unknown) {
      if (isCanceled(err) || signal.aborted || onFailure(err)) return;
    }
    await new Promise((resolve) => setTimeout(resolve, pauseMs));
    pauseMs = Math.min(pauseMs * 2, 10_000);
  }
}
