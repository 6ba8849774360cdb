import type { Worker } from "node:cluster";
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { LISTEN_BACKLOG } from "../server/server.js";

/** Messages between the primary and its workers about connections. */
export const READY = "tq:ready";
export const CONNECTION = "tq:connection";
export const CLOSED = "tq:closed";
export const DRAINING = "tq:draining";

interface Entry {
  worker: Worker;
  open: number;
  accepting: boolean;
  /** It left a ping unanswered for a while (worker-watchdog.ts): no new connections until it answers. */
  late: boolean;
  /** Sockets handed to it that node has not written to its channel yet (it sends one at a time). */
  queued: Set<Socket>;
}

/**
 * WORKERS > 1: the primary owns the port and hands each new connection to the
 * worker with the fewest open ones. Node's cluster round-robin gives a burst of
 * connections to whichever worker answers first (8 connections from one load
 * generator landed 2 and 6); gRPC clients keep few, long-lived connections, so
 * that skew would leave a core idle for as long as they live.
 */
export class ConnectionBalancer {
  private readonly workers = new Map<number, Entry>();
  private readonly server: Server;
  private someoneReady: () => void = () => undefined;
  /** Resolves when the first worker is ready: the port should not open before. */
  readonly firstReady = new Promise<void>((resolve) => (this.someoneReady = resolve));

  constructor(private readonly maxConnectionsPerWorker: number) {
    // Paused: the bytes a client sends first stay in the kernel until the worker reads them.
    this.server = createServer({ pauseOnConnect: true, noDelay: true }, (socket) => this.handOver(socket));
  }

  listen(port: number, host: string): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen({ port, host, backlog: LISTEN_BACKLOG }, () => {
        this.server.off("error", reject);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  /** Follows a worker: it takes connections once it says it is ready. */
  add(worker: Worker): void {
    const entry: Entry = { worker, open: 0, accepting: false, late: false, queued: new Set() };
    this.workers.set(worker.id, entry);
    worker.on("message", (message: { type?: string }) => {
      if (message.type === READY) {
        entry.accepting = true;
        this.someoneReady();
      }
      else if (message.type === CLOSED) entry.open = Math.max(0, entry.open - 1);
      else if (message.type === DRAINING) entry.accepting = false;
    });
    worker.once("exit", () => {
      this.workers.delete(worker.id);
      // Node closes what it still holds for a worker only on a disconnect that waits for the
      // worker's ack of the last socket: after a kill -9 that never comes, and their clients
      // waited for good (33 of 64 connections opened around a kill) while the primary leaked them.
      for (const socket of entry.queued) socket.destroy();
      entry.queued.clear();
      closeSocketAwaitingAck(worker);
    });
  }

  /** A worker whose event loop is late gets no new connections until it answers again. */
  setLate(worker: Worker, late: boolean): void {
    const entry = this.workers.get(worker.id);
    if (entry) entry.late = late;
  }

  /** Sends the worker no new connections (it is about to drain). */
  retire(worker: Worker): void {
    const entry = this.workers.get(worker.id);
    if (entry) entry.accepting = false;
  }

  /** Stops taking connections; open ones stay with their workers. */
  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private handOver(socket: Socket): void {
    // A client that resets before the handover must not crash the primary.
    socket.on("error", () => socket.destroy());
    let chosen: Entry | undefined;
    for (const entry of this.workers.values()) {
      if (entry.accepting && !entry.late && entry.worker.isConnected() && (!chosen || entry.open < chosen.open)) chosen = entry;
    }
    if (!chosen || chosen.open >= this.maxConnectionsPerWorker) {
      socket.destroy();
      return;
    }
    const entry = chosen;
    entry.open++;
    entry.queued.add(socket);
    entry.worker.send({ type: CONNECTION }, socket, (err: Error | null) => {
      entry.queued.delete(socket);
      if (err) {
        entry.open = Math.max(0, entry.open - 1);
        socket.destroy();
      }
    });
  }
}

/**
 * The socket node sent last to a worker that died before acknowledging it: node keeps
 * its handle (lib/internal/child_process.js, `_pendingMessage`) and would close it only
 * on that ack. Read defensively: a node without the field leaves this a no-op.
 */
function closeSocketAwaitingAck(worker: Worker): void {
  const pending: unknown = Reflect.get(worker.process, "_pendingMessage");
  if (typeof pending !== "object" || pending === null) return;
  const handle: unknown = Reflect.get(pending, "handle");
  const close: unknown = typeof handle === "object" && handle !== null ? Reflect.get(handle, "close") : undefined;
  if (typeof close !== "function") return;
  close.call(handle);
  Reflect.set(worker.process, "_pendingMessage", null);
}

/**
 * True when the worker says it serves; false if it exits first, or has not said
 * so within `timeoutMs` (it is killed then: a worker stuck while starting is not
 * covered by the watchdog, which follows serving workers, and would hold a roll forever).
 */
export function whenReady(worker: Worker, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => worker.process.kill("SIGKILL"), timeoutMs);
    const onMessage = (message: { type?: string }): void => {
      if (message.type !== READY) return;
      clearTimeout(timer);
      worker.off("message", onMessage);
      worker.off("exit", onExit);
      resolve(true);
    };
    const onExit = (): void => {
      clearTimeout(timer);
      worker.off("message", onMessage);
      resolve(false);
    };
    worker.on("message", onMessage);
    worker.once("exit", onExit);
  });
}
