import type { Logger } from "pino";
import { flushLog } from "../log.js";

/**
 * SIGTERM or SIGINT: `stop`, then exit 0 (1 if the stop failed), once the log
 * lines still queued are written. Answers the same stop for a failure found
 * while running (`why` is written to stderr and logged; the exit code is 1).
 */
export function onStopSignal(log: Logger, stop: () => Promise<void>): (why: string) => void {
  let stopping = false;
  let exitCode = 0;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "draining in-flight calls, then stopping");
    stop().then(
      () => {
        log.info("stopped");
        void flushLog(log, 1000).then(() => process.exit(exitCode));
      },
      (err: unknown) => {
        log.error({ err }, "unclean stop");
        void flushLog(log, 1000).then(() => process.exit(1));
      },
    );
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
  return (why) => {
    // One line on stderr, as a failed start of a single process says it.
    process.stderr.write(`ticket-queue: ${why}\n`);
    log.error(why);
    exitCode = 1;
    shutdown("failure");
  };
}

/**
 * Under `npm start` the service is npm's child: a supervisor that stops npm
 * stops the service (npm forwards SIGTERM; the script execs node, so no shell
 * sits between them). If npm itself is killed outright (-9), the service is
 * reparented: it then stops as if it had been sent SIGTERM.
 */
export function stopWhenOrphaned(log: Logger): void {
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    log.warn({ parent }, "npm, which started this service, is gone: stopping");
    process.kill(process.pid, "SIGTERM");
  }, 1000);
  timer.unref();
}
