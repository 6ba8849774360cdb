import { pino, type Logger } from "pino";

/**
 * Structured JSON logs on stdout. Secrets never reach them: nothing logs request
 * headers, and the `redact` list is a second guard for fields that might.
 */
export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: "ticket-queue", pid: process.pid },
    redact: { paths: ["adminToken", "token", "headers", "*.headers", "req.headers"], censor: "[redacted]" },
  });
}
