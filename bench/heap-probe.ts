// Loaded into the service with `node --expose-gc --import ./dist/bench/heap-probe.js`
// by bench/stream-heap.ts and bench/burst.ts (cluster workers inherit it): on
// SIGUSR2 it collects garbage and writes the process's memory use as JSON to
// $HEAP_PROBE_FILE.<pid>. A measuring aid only, never in production.
import { writeFileSync } from "node:fs";

const file = process.env["HEAP_PROBE_FILE"];
const gc = (globalThis as { gc?: () => void }).gc;
if (file && gc) {
  process.on("SIGUSR2", () => {
    gc();
    gc();
    writeFileSync(`${file}.${process.pid}`, JSON.stringify(process.memoryUsage()));
  });
}
