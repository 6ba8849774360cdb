import { pino, type Logger } from "pino";
import { traceIds } from "./observability/tracing.js";
import sonicBoom, { type SonicBoom as SonicBoomClass } from "sonic-boom";

// sonic-boom is CommonJS (module.exports = SonicBoom); its typings declare an ES default export.
const SonicBoom = sonicBoom as unknown as typeof SonicBoomClass;

/** Log bytes held for a reader that does not keep up; past it lines are dropped, not buffered. */
const MAX_UNWRITTEN_BYTES = 16 * 1024 * 1024;

/**
 * Structured JSON logs on stdout. Secrets never reach them: nothing logs request
 * headers, and the `redact` list is a second guard for fields that might.
 *
 * The destination is sonic-boom (pino's own writer) set up here rather than by
 * pino: written asynchronously, so a stalled log reader never blocks a call;
 * bounded, so it never grows the heap either; and a reader that is gone
 * (EPIPE) ends the logging. pino's default also registers a synchronous flush
 * at exit, and sonic-boom's retries an EPIPE for ever: a stopped service whose
 * log pipe broke mid-write never exited. Lines still queued are written by
 * flushLog before the process exits.
 */
export function createLogger(level: string): Logger {
  // minLength 1 writes each line at once as usual, and lets flush(cb) wait until the queue is written.
  const destination = new SonicBoom({ fd: 1, sync: false, minLength: 1, maxLength: MAX_UNWRITTEN_BYTES });
  destination.on("error", (err: NodeJS.ErrnoException) => {
    // Nobody reads the log any more: stop writing it (what pino itself does on EPIPE).
    if (err.code === "EPIPE") destination.write = () => true;
  });
  return pino(
    {
      level,
      base: { service: "ticket-queue", pid: process.pid },
      // The active trace's ids on every line logged inside a traced call (tracing on).
      mixin: traceIds,
      redact: { paths: ["adminToken", "token", "headers", "*.headers", "req.headers"], censor: "[redacted]" },
    },
    destination,
  );
}

/** Resolves once the queued log lines are written, or after `maxMs` (a reader that stalled). */
export function flushLog(log: Logger, maxMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, maxMs);
    log.flush(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
