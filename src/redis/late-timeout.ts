/**
 * Calls `fail` once `ms` have passed, unless cleared first (clearTimeout). A
 * timer that fires late (this process was busy: a burst of calls) first lets
 * the I/O that waited behind it run, the awaited answer maybe among it:
 * setImmediate comes after it, where a due timer runs before it. A plain timer
 * failed answers that were already in the socket (a burst of 2,000 new watches
 * failed a tenth of them UNAVAILABLE with Redis idle).
 */
export function lateTimeout(fail: () => void, ms: number): NodeJS.Timeout {
  return setTimeout(() => setImmediate(fail), ms);
}
