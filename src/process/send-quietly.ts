import type { Worker } from "node:cluster";

/**
 * Sends an IPC message whose loss is harmless (to the primary, or to a worker).
 * With a callback: a send to a process that died meanwhile fails there, where
 * without one it is an 'error' event nobody listens to, which would end this
 * process (the primary: every worker with it).
 */
export function sendQuietly(to: Worker | NodeJS.Process, message: object): void {
  if ("isConnected" in to && !to.isConnected()) return;
  to.send?.(message, undefined, undefined, ignore);
}

function ignore(): void {}
