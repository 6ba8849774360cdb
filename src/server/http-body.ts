import { constants as http2Constants } from "node:http2";
import type { JsonWriteOptions } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import { codeToHttpStatus, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import type { WrittenStream } from "../rpc/stream-end.js";
import type { SignalSource } from "../rpc/unary-calls.js";
import { serverBusy, type BodyBudget, type BodyHolder } from "./body-budget.js";

// node:http and node:http2 (compatibility API) requests and responses alike, as connect-node takes them.
export type NodeRequest = Parameters<typeof universalRequestFromNodeRequest>[0];
export type NodeResponse = Parameters<typeof universalResponseToNodeResponse>[1];
type Request = NodeRequest;
type Response = NodeResponse;

/** Requests that came as HEAD and are answered as GET. */
const HEAD_REQUESTS = new WeakSet<Request>();

/**
 * HEAD is GET without a body (node sends none for HEAD): answered by the same
 * routes. A stream's route asks `wasHead` to answer only its start.
 */
export function headAsGet(req: Request): void {
  HEAD_REQUESTS.add(req);
  Object.defineProperty(req, "method", { value: "GET" });
}

export function wasHead(req: Request): boolean {
  return HEAD_REQUESTS.has(req);
}

/** A request body passed its limit (REST answers 413, the RPC transports RESOURCE_EXHAUSTED). */
export class BodyTooLarge extends Error {
  override readonly name = "BodyTooLarge";
  constructor(readonly limit: number) {
    super(`request body is larger than ${limit} bytes`);
  }
}

/**
 * The request body's chunks, each taken from the budget as it arrives and all
 * given back when the reading ends (read, refused or abandoned). A body the
 * budget cuts (an older one, to make room) is destroyed, as the request
 * timeout would; one that cannot fit even alone throws `serverBusy()`. The
 * request is not destroyed when reading stops early: the refusal must still
 * reach the client.
 */
export async function* budgetedBody(req: Request, budget: BodyBudget): AsyncGenerator<Buffer> {
  let wasCut = false;
  const holder: BodyHolder = {
    cut() {
      wasCut = true;
      // Destroyed without an error: one would be emitted where nothing listens (an uncaught exception).
      // HTTP/1.1 closes the connection with it.
      req.destroy();
      // node:http2's compatibility request leaves its stream open: reset it, as the request timeout does.
      if ("stream" in req) req.stream.close(http2Constants.NGHTTP2_CANCEL);
    },
  };
  try {
    for await (const chunk of req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
      if (!budget.take(holder, chunk.length)) throw serverBusy();
      yield chunk;
    }
  } catch (err: unknown) {
    if (wasCut) throw serverBusy();
    // Its client went away mid-body (a reflection stream that buf curl or grpcurl leaves open and
    // goes): a cancelled call, not a bug of ours to log as one.
    if (err instanceof Error && (err as NodeJS.ErrnoException).code === "ERR_STREAM_PREMATURE_CLOSE") throw clientLeft();
    throw err;
  } finally {
    budget.give(holder);
  }
  // A cut body never reads as whole.
  if (wasCut) throw serverBusy();
}

/** The whole request body, refused (BodyTooLarge) past `limit` bytes, declared or streamed, or past the budget (`serverBusy`). */
export async function readBody(req: Request, limit: number, budget: BodyBudget): Promise<Buffer> {
  if (Number(req.headers["content-length"] ?? 0) > limit) throw new BodyTooLarge(limit);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of budgetedBody(req, budget)) {
    size += chunk.length;
    if (size > limit) throw new BodyTooLarge(limit);
    chunks.push(chunk);
  }
  return chunks.length === 1 ? (chunks[0] ?? Buffer.alloc(0)) : Buffer.concat(chunks);
}

/**
 * An RPC's request body (gRPC-web, Connect): as readBody, but one past its limit
 * is the call's RESOURCE_EXHAUSTED (the message limit is `maxMessageBytes`; the
 * body may carry a frame's header beyond it). The rest of such a body is not
 * read: an HTTP/1.1 client is told not to reuse the connection.
 */
export async function readRpcBody(req: Request, res: Response, maxMessageBytes: number, budget: BodyBudget, framing = 0): Promise<Buffer> {
  try {
    return await readBody(req, maxMessageBytes + framing, budget);
  } catch (err: unknown) {
    // (not once answered: a deadline may have passed while the body came)
    if (req.httpVersionMajor === 1 && !res.headersSent) res.setHeader("connection", "close");
    throw err instanceof BodyTooLarge ? new ConnectError(`message is larger than ${maxMessageBytes} bytes`, Code.ResourceExhausted) : err;
  }
}

/** The request's path, without its query string (which no RPC path reads). */
export function pathOf(req: Request): string {
  const url = req.url ?? "";
  const query = url.indexOf("?");
  return query < 0 ? url : url.slice(0, query);
}

/** Whether nothing was answered yet and the client is still there. (node:http2's compatibility response has no `destroyed`: its stream has.) */
export function canAnswer(res: Response): boolean {
  return !res.headersSent && !res.writableEnded && !("stream" in res ? res.stream.destroyed : res.destroyed);
}

/** Response metadata as node's header record; `trailer` (a unary Connect or REST answer's) as `trailer-` headers. */
export function headerRecord(header: Headers | undefined, trailer?: Headers): Record<string, string> {
  const headers: Record<string, string> = {};
  if (header) for (const [name, value] of header) headers[name] = value;
  if (trailer) for (const [name, value] of trailer) headers[`trailer-${name}`] = value;
  return headers;
}

export interface ErrorAnswerOptions {
  /** Default: the HTTP status of the error's code. */
  status?: number;
  headers?: Record<string, string>;
  /** How error details are written (REST: proto field names, defaults emitted). */
  json?: Partial<JsonWriteOptions>;
}

/** Answers with Connect's JSON error and the HTTP status of its code. */
export function sendConnectError(res: Response, err: ConnectError, { status = codeToHttpStatus(err.code), headers = {}, json = {} }: ErrorAnswerOptions = {}): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const body = errorToJsonBytes(err, json);
  // The error's metadata travels as response headers, as in Connect's own error answers (x-request-id, retry-after).
  const metadata: Record<string, string> = {};
  for (const [name, value] of err.metadata) metadata[name] = value;
  res.writeHead(status, { ...metadata, "content-type": "application/json", "content-length": body.length, ...headers });
  res.end(body);
}

/**
 * Bytes of a pushed stream's messages (gRPC, gRPC-web, SSE) its client may
 * leave unread before it is dropped. A client that stops reading (or a bot that
 * never does) would otherwise make the server buffer every later update for it;
 * one that comes back reconnects and reads its state afresh. Counted before a
 * write, so one message larger than this (a page of WatchEvent's feed) still goes.
 */
export const MAX_UNREAD_BYTES = 64 * 1024;

/**
 * A stream's writer that takes nothing for this long while a read stream waits
 * for it is cut (REQUEST_TIMEOUT_SECONDS' default): waiting must not hold a
 * stream for ever.
 */
const DRAIN_TIMEOUT_MS = 30_000;

/** What a stream's write did: went out, went out but the client should be waited for (`full`), or the client was dropped. */
export type WriteOutcome = "written" | "full" | "dropped";

/** Writes a stream's chunk, unless its client already leaves more than MAX_UNREAD_BYTES unread: then it is dropped (the response destroyed). */
export function writeOrDrop(res: Response, chunk: string | Uint8Array): WriteOutcome {
  if (res.writableLength > MAX_UNREAD_BYTES) {
    res.destroy();
    return "dropped";
  }
  return res.write(chunk) ? "written" : "full";
}

/** Where a stream's messages go: a response, or an HTTP/2 stream. */
interface Drainable {
  once(event: "drain" | "close", listener: () => void): unknown;
  off(event: "drain" | "close", listener: () => void): unknown;
  destroy(): unknown;
}

/**
 * Resolves once `out` has taken what was written ('drain') or is gone; one that
 * takes nothing for DRAIN_TIMEOUT_MS is destroyed. What a read stream (not
 * pushed: WatchEvent, Health.Watch) waits for before its next message, so that
 * a client reading at its own pace is held back, not dropped.
 */
export function drained(out: Drainable): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      out.off("drain", done);
      out.off("close", done);
      resolve();
    };
    const timer = setTimeout(() => {
      out.destroy();
      done();
    }, DRAIN_TIMEOUT_MS);
    out.once("drain", done);
    out.once("close", done);
  });
}

/**
 * An HTTP call's abort signal (REST, gRPC-web), made on first use; it aborts
 * when the client leaves before the answer is written. A pushed stream it
 * follows is stopped then too (a pushed stream asks for no signal).
 */
export class ResponseSignals implements SignalSource {
  private controller: AbortController | undefined;
  private reason: ConnectError | undefined;
  private stream: WrittenStream | undefined;
  /** The response closed (answered, or the client left). (node:http2's compatibility response has no `destroyed`.) */
  closed = false;

  constructor(res: Response) {
    // Made after the request's body was read: its client may have left already, and "close" come and gone.
    if (!res.writableEnded && ("stream" in res ? res.stream.destroyed : res.destroyed)) {
      this.closed = true;
      this.reason = clientLeft();
    }
    // `on`, not `once` (a response closes once): `once` adds a wrapper and its state, held as long as an open stream.
    res.on("close", () => {
      this.closed = true;
      // Not writableFinished: node:http2's compatibility response reports that true
      // when its stream closes, answered or not, and SSE streams left by HTTP/2
      // clients were never ended (their watchers and heap stayed).
      if (!res.writableEnded) this.abort(clientLeft());
    });
  }

  /** Ends the call for the handler (the client left, or its deadline passed), and the pushed stream it follows. */
  abort(reason: ConnectError): void {
    this.reason ??= reason;
    this.controller?.abort(this.reason);
    this.stream?.stop(this.reason);
  }

  /** Stops `stream` when the call ends early (at once if it has). */
  follow(stream: WrittenStream | undefined): void {
    if (this.reason) stream?.stop(this.reason);
    else this.stream = stream;
  }

  signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.reason) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }
}

/**
 * One HTTP call's signals and deadline (gRPC-web, Connect): what its answer, or
 * its stream's writer, ends with. When the deadline passes the handler's signal
 * aborts and `answerExpired` answers DEADLINE_EXCEEDED in the call's protocol
 * (a module's function, not a closure per call).
 */
export class HttpCall {
  readonly signals: ResponseSignals;
  /** Set once the deadline passed: a stream then ends with it. */
  expired: ConnectError | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly res: Response,
    private readonly answerExpired: (res: Response, err: ConnectError) => void,
  ) {
    this.signals = new ResponseSignals(res);
  }

  /** Starts the deadline (ms); answers it as epoch ms, or undefined for none. */
  deadlineIn(timeoutMs: number | undefined): number | undefined {
    if (timeoutMs === undefined) return undefined;
    // A deadline of 0 has passed: answered now, so no handler runs after it (a timer would let the body's read go first).
    if (timeoutMs <= 0) this.expire();
    else this.timer = setTimeout(() => this.expire(), timeoutMs);
    return Date.now() + timeoutMs;
  }

  /** The client left, or the answer is written. */
  get gone(): boolean {
    return this.signals.closed || this.res.writableEnded;
  }

  finish(): void {
    clearTimeout(this.timer);
  }

  private expire(): void {
    this.expired = new ConnectError("the deadline was exceeded", Code.DeadlineExceeded);
    this.signals.abort(this.expired);
    // Answered before its body was read: an HTTP/1.1 client must not reuse the connection.
    const { req } = this.res;
    if (req.httpVersionMajor === 1 && !req.readableEnded && !this.res.headersSent) this.res.setHeader("connection", "close");
    this.answerExpired(this.res, this.expired);
  }
}

/** Why a stream's client was dropped: it left more than MAX_UNREAD_BYTES unread. */
export function notRead(): ConnectError {
  return new ConnectError(`the client left more than ${MAX_UNREAD_BYTES} bytes of its stream unread`, Code.ResourceExhausted);
}

function clientLeft(): ConnectError {
  return new ConnectError("client closed the request", Code.Canceled);
}
