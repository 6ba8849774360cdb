// One client process of `npm run bench:burst` (bench/burst.ts starts several: a
// process may hold only so many sockets). Each traveller is one HTTP/1.1
// connection, as a browser page's: a gRPC-web Reserve, then on the same
// kept-alive connection a live WatchStatus (gRPC-web server streaming) or, for
// some, the REST gateway's Server-Sent Events. Requests and answers are framed
// by hand on raw sockets, so that this side takes as little of the shared cores
// as it can.
import { connect, type Socket } from "node:net";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { ReservationStatus, ReserveRequestSchema, ReserveResponseSchema, WatchStatusRequestSchema, WatchStatusResponseSchema } from "../gen/ticketqueue/v1/ticket_queue_pb.js";

export interface ClientStart {
  port: number;
  eventId: string;
  /** Travellers first..first+count-1 (user ids t<i>). */
  first: number;
  count: number;
  /** Every n-th traveller watches over SSE instead of gRPC-web (0: none). */
  sseEvery: number;
  /** Source addresses 127.0.0.2 on: one address has only about 28,000 ephemeral ports. */
  sourceAddresses: number;
  /** This process's joins per second; 0: all at once (the burst). */
  joinsPerSecond: number;
}

export type ToClient = { kind: "start"; start: ClientStart } | { kind: "mark"; round: number } | { kind: "report"; round: number } | { kind: "close" };
export type FromClient =
  | { kind: "joined"; sentAt: number; answeredAt: number[]; answered: number[]; failed: string[] }
  | { kind: "watching"; grpcWeb: number; sse: number; failed: string[]; reconnected: number }
  | { kind: "round"; round: number; toldAt: number[]; toldAtSse: number[]; silent: number }
  | { kind: "closed" };

interface Status {
  status: ReservationStatus;
  position: number;
}

interface Traveller {
  index: number;
  socket: Socket;
  sse: boolean;
  /** What the current answer's body holds. */
  mode: "grpc-web" | "sse";
  /** Past the Reserve: answers are WatchStatus messages. */
  watching: boolean;
  /** Bytes received and not parsed yet. */
  buffer: Buffer;
  /** Body bytes not yet a whole gRPC-web frame (or SSE event). */
  body: Buffer;
  headersDone: boolean;
  chunked: boolean;
  contentLength: number;
  onStatus: (status: Status, ticket: string) => void;
  /** The error the server ended the watch with (gRPC-web trailers, or SSE's error event), if it did. */
  endedWith?: string;
  position: number;
  seated: boolean;
  /** When told of the current round's change (ms since the epoch). */
  toldAt: number | undefined;
}

const now = (): number => performance.timeOrigin + performance.now();
/** A traveller that is not answered within this is counted failed (its socket closed). */
const GIVE_UP_MS = 60_000;
/** Sockets opened before the event loop gets a turn (see start). */
const CONNECTS_PER_TURN = 100;
const send = (message: FromClient): void => void process.send?.(message);
const travellers: Traveller[] = [];
const ownerOf = new WeakMap<Socket, Traveller>();
/** Watches sent again on a new connection (see watch). */
let reconnected = 0;
let round = -1;

process.on("message", (message: ToClient) => {
  switch (message.kind) {
    case "start":
      void start(message.start);
      break;
    case "mark":
      round = message.round;
      for (const t of travellers) t.toldAt = undefined;
      break;
    case "report": {
      const waiting = travellers.filter((t) => !t.socket.destroyed && (t.toldAt !== undefined || !t.seated));
      const toldAt = waiting.flatMap((t) => (t.toldAt === undefined ? [] : [t.toldAt]));
      const toldAtSse = waiting.flatMap((t) => (t.toldAt === undefined || !t.sse ? [] : [t.toldAt]));
      send({ kind: "round", round: message.round, toldAt, toldAtSse, silent: waiting.length - toldAt.length });
      break;
    }
    case "close":
      for (const t of travellers) t.socket.destroy();
      send({ kind: "closed" });
      setTimeout(() => process.exit(0), 100);
  }
});

async function start(s: ClientStart): Promise<void> {
  const sentAt = now();
  const answeredAt: number[] = [];
  const answered: number[] = [];
  const failed: string[] = [];
  const watches: Promise<void>[] = [];
  const watchFailed: string[] = [];
  // As a page does: the live status opens on the connection as soon as the Reserve is answered.
  const joins: Promise<void>[] = [];
  for (let k = 0; k < s.count; k++) {
    joins.push(
      join(s, s.first + k).then(
        ({ traveller, ticket }) => {
          answeredAt.push(now());
          answered.push(traveller.index);
          watches.push(watch(s, traveller, ticket).catch((err: unknown) => void watchFailed.push(String(err))));
        },
        (err: unknown) => void failed.push(String(err)),
      ),
    );
    // A page sends its request as soon as it is connected. Opening thousands of
    // sockets in one go kept this process from writing on any of them for
    // seconds (each connect() took up to 0.8 ms here), long enough for the
    // server's first-byte limit to close them: every few, the loop lets the
    // connected ones write.
    if (k % CONNECTS_PER_TURN === CONNECTS_PER_TURN - 1) await new Promise((resolve) => setImmediate(resolve));
    // Paced (a ramp, to find how many watchers a machine holds): the next one waits for its time.
    if (s.joinsPerSecond > 0) {
      const due = sentAt + ((k + 1) * 1000) / s.joinsPerSecond - now();
      if (due > 0) await new Promise((resolve) => setTimeout(resolve, due));
    }
  }
  await Promise.all(joins);
  send({ kind: "joined", sentAt, answeredAt, answered, failed });
  await Promise.all(watches);
  const live = travellers.filter((t) => !t.socket.destroyed);
  send({ kind: "watching", grpcWeb: live.filter((t) => !t.sse).length, sse: live.filter((t) => t.sse).length, failed: watchFailed, reconnected });
}

/** Connects and Reserves over gRPC-web; resolves with the traveller (its connection kept alive) and its ticket. */
function join(s: ClientStart, index: number): Promise<{ traveller: Traveller; ticket: string }> {
  return new Promise((resolve, reject) => {
    const socket = open(s, index);
    const t: Traveller = {
      index,
      socket,
      sse: s.sseEvery > 0 && index % s.sseEvery === 0,
      mode: "grpc-web",
      watching: false,
      buffer: Buffer.alloc(0),
      body: Buffer.alloc(0),
      headersDone: false,
      chunked: false,
      contentLength: 0,
      onStatus: (status, ticket) => {
        clearTimeout(timer);
        t.position = status.position;
        t.seated = status.status === ReservationStatus.RESERVED;
        socket.removeAllListeners("close");
        resolve({ traveller: t, ticket });
      },
      position: 0,
      seated: false,
      toldAt: undefined,
    };
    ownerOf.set(socket, t);
    const calledAt = now();
    let connectedAt = 0;
    socket.once("connect", () => (connectedAt = now()));
    socket.on("error", (err) => reject(new Error(`${err.message} (${connectedAt ? `connected after ${Math.round(connectedAt - calledAt)} ms, failed ${Math.round(now() - connectedAt)} ms later` : `not connected after ${Math.round(now() - calledAt)} ms`})`)));
    socket.once("close", () => reject(new Error(`traveller ${index}: closed before the Reserve answer`)));
    const timer = setTimeout(() => socket.destroy(new Error(`traveller ${index}: no Reserve answer within ${GIVE_UP_MS} ms`)), GIVE_UP_MS);
    post(socket, "Reserve", toBinary(ReserveRequestSchema, create(ReserveRequestSchema, { eventId: s.eventId, userId: `t${index}` })));
  });
}

/** A traveller's connection. A source address only when one is not enough: binding first makes the kernel search for a free port on each connect. */
function open(s: ClientStart, index: number): Socket {
  const socket = connect({ port: s.port, host: "127.0.0.1", ...(s.sourceAddresses > 1 ? { localAddress: `127.0.0.${2 + (index % s.sourceAddresses)}` } : {}) });
  socket.setNoDelay(true);
  socket.on("data", (chunk: Buffer) => {
    const t = ownerOf.get(socket);
    if (t) onData(t, chunk);
  });
  return socket;
}

/** Opens the traveller's live status on its connection; resolves at the first message. */
function watch(s: ClientStart, t: Traveller, ticket: string, again = false): Promise<void> {
  if (!again) travellers.push(t);
  if (!again && t.socket.destroyed) return watchAgain(s, t, ticket);
  t.watching = true;
  return new Promise((resolve, reject) => {
    const askedAt = now();
    const readBefore = t.socket.bytesRead;
    let gaveUp = "";
    t.socket.once("error", (err) => (gaveUp = `: ${err.message.replace(/traveller \d+: /, "")}`));
    t.socket.once("close", () => {
      // The server closed the kept-alive connection before the watch reached it (idle
      // past its keep-alive while this process lagged): a browser opens a new one, once.
      if (!again && t.socket.bytesRead === readBefore && !t.endedWith) {
        clearTimeout(timer);
        watchAgain(s, t, ticket).then(resolve, reject);
        return;
      }
      // How soon: a connection the server had already closed (idle past its keep-alive) closes at once.
      const after = now() - askedAt;
      const when = after < 10 ? "within 10 ms" : after < 1000 ? "within 1 s" : "after 1 s or more";
      reject(new Error(`traveller ${t.index}: the watch closed ${when} of being asked for${t.endedWith ? ` (${t.endedWith})` : ""}${gaveUp}`));
    });
    const timer = setTimeout(() => t.socket.destroy(new Error(`traveller ${t.index}: no first status within ${GIVE_UP_MS} ms`)), GIVE_UP_MS);
    let first = true;
    t.onStatus = (m) => {
      if (first) {
        clearTimeout(timer);
        first = false;
        t.position = m.position;
        resolve();
        return;
      }
      // The round's change for this traveller: the first message that moves them forward or seats them.
      if (round >= 0 && t.toldAt === undefined && (m.status === ReservationStatus.RESERVED || m.position < t.position)) t.toldAt = now();
      t.position = m.position;
      if (m.status === ReservationStatus.RESERVED) t.seated = true;
    };
    if (t.sse) {
      t.mode = "sse";
      t.socket.write(`GET /v1/events/${s.eventId}/watch?user_id=t${t.index}&ticket=${ticket} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`);
    } else {
      post(t.socket, "WatchStatus", toBinary(WatchStatusRequestSchema, create(WatchStatusRequestSchema, { eventId: s.eventId, userId: `t${t.index}`, ticket })));
    }
  });
}

/** The watch on a new connection: the kept-alive one was closed. */
function watchAgain(s: ClientStart, t: Traveller, ticket: string): Promise<void> {
  Object.assign(t, { socket: open(s, t.index), buffer: Buffer.alloc(0), body: Buffer.alloc(0), headersDone: false });
  ownerOf.set(t.socket, t);
  reconnected++;
  return watch(s, t, ticket, true);
}

function post(socket: Socket, method: string, message: Uint8Array): void {
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  socket.write(`POST /ticketqueue.v1.TicketQueueService/${method} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/grpc-web+proto\r\nX-Grpc-Web: 1\r\nContent-Length: ${frame.length}\r\n\r\n`);
  socket.write(frame);
}

/** HTTP/1.1 answers on a kept-alive connection: a status line and headers, then a content-length or chunked body. */
function onData(t: Traveller, chunk: Buffer): void {
  t.buffer = t.buffer.length === 0 ? chunk : Buffer.concat([t.buffer, chunk]);
  for (;;) {
    if (!t.headersDone) {
      const end = t.buffer.indexOf("\r\n\r\n");
      if (end < 0) return;
      const head = t.buffer.subarray(0, end).toString("latin1").toLowerCase();
      t.buffer = t.buffer.subarray(end + 4);
      if (!head.startsWith("http/1.1 200")) return void t.socket.destroy(new Error(`traveller ${t.index}: ${head.split("\r\n")[0] ?? ""}`));
      t.headersDone = true;
      t.chunked = head.includes("transfer-encoding: chunked");
      t.contentLength = Number(/content-length: (\d+)/.exec(head)?.[1] ?? 0);
    }
    if (!t.chunked) {
      if (t.buffer.length < t.contentLength) return;
      onBody(t, t.buffer.subarray(0, t.contentLength));
      t.buffer = t.buffer.subarray(t.contentLength);
      t.headersDone = false; // the next answer on this connection
      continue;
    }
    const line = t.buffer.indexOf("\r\n");
    if (line < 0) return;
    const size = Number.parseInt(t.buffer.subarray(0, line).toString("latin1"), 16);
    if (t.buffer.length < line + 2 + size + 2) return;
    onBody(t, t.buffer.subarray(line + 2, line + 2 + size));
    t.buffer = t.buffer.subarray(line + 2 + size + 2);
    if (size === 0) t.headersDone = false;
  }
}

function onBody(t: Traveller, bytes: Buffer): void {
  t.body = t.body.length === 0 ? Buffer.from(bytes) : Buffer.concat([t.body, bytes]);
  if (t.mode === "sse") {
    for (let end = t.body.indexOf("\n\n"); end >= 0; end = t.body.indexOf("\n\n")) {
      const data = /^data: (.*)$/m.exec(t.body.subarray(0, end).toString("utf8"))?.[1];
      t.body = t.body.subarray(end + 2);
      const m = data === undefined ? undefined : (JSON.parse(data) as { status?: string; position?: number; code?: string; message?: string });
      if (m?.code) t.endedWith = `${m.code}: ${m.message ?? ""}`;
      if (m?.status) t.onStatus({ status: m.status === "RESERVATION_STATUS_RESERVED" ? ReservationStatus.RESERVED : ReservationStatus.QUEUED, position: Number(m.position ?? 0) }, "");
    }
    return;
  }
  while (t.body.length >= 5) {
    const length = t.body.readUInt32BE(1);
    if (t.body.length < 5 + length) return;
    const flags = t.body[0] ?? 0;
    const payload = t.body.subarray(5, 5 + length);
    t.body = t.body.subarray(5 + length);
    if (flags !== 0) {
      // The trailer frame: a watch that ends with an error says which.
      const status = /grpc-status: *(\d+)/i.exec(payload.toString("latin1"))?.[1];
      if (t.watching && status !== undefined && status !== "0") t.endedWith = `grpc-status ${status}: ${decodeURIComponent(/grpc-message: *([^\r\n]*)/i.exec(payload.toString("latin1"))?.[1] ?? "")}`;
      continue;
    }
    if (t.watching) {
      const m = fromBinary(WatchStatusResponseSchema, payload);
      t.onStatus({ status: m.status, position: m.position }, "");
    } else {
      const r = fromBinary(ReserveResponseSchema, payload);
      t.onStatus({ status: r.status, position: r.position }, r.ticket);
    }
  }
}
