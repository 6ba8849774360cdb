import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { expect, it } from "vitest";

// The built module (pretest built it), in a real node:cluster primary and worker.
const METRICS = pathToFileURL(resolve("dist/src/observability/metrics.js")).href;

it("a worker that dies while the primary gathers its /metrics answer does not take the primary down", async () => {
  const script = `
    import cluster from "node:cluster";
    import { serveClusterMetrics } from ${JSON.stringify(METRICS)};
    if (cluster.isPrimary) {
      serveClusterMetrics();
      // prom-client waits up to 5 s for the gone worker's metrics, then the primary answers a worker that is no more.
      cluster.fork().on("exit", () => setTimeout(() => { console.log("primary alive"); process.exit(0); }, 6500));
    } else {
      // Asks for the combined metrics, then dies before the answer.
      process.send({ type: "tq:metrics", id: "gone" }, () => process.exit(0));
    }`;
  // A file, not -e: cluster.fork starts the worker from the primary's script.
  const dir = mkdtempSync(join(tmpdir(), "tq-cluster-metrics-"));
  const file = join(dir, "primary.mjs");
  writeFileSync(file, script);
  const child = spawn(process.execPath, [file], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (out += chunk.toString()));
  const code = await new Promise<number | null>((done) => child.on("exit", done)).finally(() => rmSync(dir, { recursive: true, force: true }));
  expect(out).toContain("primary alive");
  expect(out).not.toContain("ERR_IPC_CHANNEL_CLOSED");
  expect(code).toBe(0);
}, 20_000);
