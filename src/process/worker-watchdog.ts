import cluster, { type Worker } from "node:cluster";
import type { Logger } from "pino";

export const PING = "tq:ping";
export const PONG = "tq:pong";

/**
 * WORKERS > 1: the primary asks each serving worker for a sign of life three
 * times per `limitMs`; one that answered none of the last three (its event loop
 * is stuck: an endless loop, a SIGSTOP) is killed, and replaced as any dead
 * worker is. Without it the primary routed new connections around a stuck
 * worker (its open count never fell), so /health kept answering 200 while that
 * worker's clients waited for good and no liveness probe could see it. `late`
 * hears when a worker has let a ping go unanswered for a whole round (it should
 * get no new connections meanwhile), and when it answers again.
 */
export function watchWorkers(serving: () => Worker[], limitMs: number, log: Logger, late: (worker: Worker, isLate: boolean) => void): void {
  const unanswered = new Map<number, number>();
  cluster.on("message", (worker, message: { type?: string }) => {
    if (message.type !== PONG) return;
    if ((unanswered.get(worker.id) ?? 0) >= 2) late(worker, false);
    unanswered.delete(worker.id);
  });
  cluster.on("exit", (worker) => unanswered.delete(worker.id));
  setInterval(() => {
    for (const worker of serving()) {
      const missed = unanswered.get(worker.id) ?? 0;
      if (missed >= 3) {
        log.error({ pid: worker.process.pid, silentMs: limitMs }, "worker stopped answering: killing it (it is replaced)");
        unanswered.delete(worker.id);
        worker.process.kill("SIGKILL");
        continue;
      }
      unanswered.set(worker.id, missed + 1);
      if (missed + 1 === 2) late(worker, true);
      worker.send({ type: PING }, undefined, undefined, () => undefined);
    }
  }, limitMs / 3).unref();
}

/** In a worker: answers the primary's pings from the event loop. */
export function answerPings(): void {
  process.on("message", (message: { type?: string }) => {
    if (message.type === PING) process.send?.({ type: PONG }, undefined, undefined, () => undefined);
  });
}
