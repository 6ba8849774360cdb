import cluster, { type Worker } from "node:cluster";
import type { Logger } from "pino";
import { sendQuietly } from "./send-quietly.js";

export const ALIVE = "tq:alive";

/**
 * WORKERS > 1, in the primary: each serving worker says it is alive three times
 * per `limitMs`, from a timer on its own event loop (`sayAlive`). One silent for
 * half of `limitMs` gets no new connections until it speaks again (`late`); one
 * silent for all of it (its event loop is stuck: an endless loop, a SIGSTOP) is
 * killed, and replaced as any dead worker is. Without it the primary routed new
 * connections around a stuck worker (its open count never fell), so /health kept
 * answering 200 while that worker's clients waited for good. The worker speaks,
 * rather than answering the primary: what the primary sends a worker waits behind
 * every connection it hands that worker (one at a time, each acknowledged from the
 * worker's event loop), so a busy, healthy worker would have seemed silent.
 */
export function watchWorkers(serving: () => Worker[], limitMs: number, log: Logger, late: (worker: Worker, isLate: boolean) => void): void {
  const heard = new Map<number, number>();
  const lateOnes = new Set<number>();
  cluster.on("message", (worker, message: { type?: string }) => {
    if (message.type !== ALIVE) return;
    heard.set(worker.id, Date.now());
    if (lateOnes.delete(worker.id)) late(worker, false);
  });
  cluster.on("exit", (worker) => {
    heard.delete(worker.id);
    lateOnes.delete(worker.id);
  });
  setInterval(() => {
    const now = Date.now();
    for (const worker of serving()) {
      // (a worker that just started serving is heard from now on)
      const silentMs = now - (heard.get(worker.id) ?? (heard.set(worker.id, now), now));
      if (silentMs >= limitMs) {
        log.error({ pid: worker.process.pid, silentMs }, "worker stopped answering: killing it (it is replaced)");
        worker.process.kill("SIGKILL");
      } else if (silentMs >= limitMs / 2 && !lateOnes.has(worker.id)) {
        lateOnes.add(worker.id);
        late(worker, true);
      }
    }
  }, limitMs / 6).unref();
}

/** In a worker: tells the primary it is alive, three times per `limitMs`. */
export function sayAlive(limitMs: number): void {
  setInterval(() => sendQuietly(process, { type: ALIVE }), limitMs / 3).unref();
}
