import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { expect, it } from "vitest";

// The built module (pretest built it), in a real node:cluster primary and worker.
const METRICS = pathToFileURL(resolve("dist/src/observability/cluster-metrics.js")).href;
const PROM_CLIENT = pathToFileURL(resolve("node_modules/prom-client/index.js")).href;

/** Runs `script` as a node:cluster primary (from a file: cluster.fork starts the worker from it); its output and exit code. */
async function runPrimary(script: string): Promise<{ out: string; code: number | null }> {
  const dir = mkdtempSync(join(tmpdir(), "tq-cluster-metrics-"));
  const file = join(dir, "primary.mjs");
  writeFileSync(file, script);
  const child = spawn(process.execPath, [file], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (out += chunk.toString()));
  const code = await new Promise<number | null>((done) => child.on("exit", done)).finally(() => rmSync(dir, { recursive: true, force: true }));
  return { out, code };
}

it("a worker that dies while the primary gathers its /metrics answer does not take the primary down", async () => {
  const script = `
    import cluster from "node:cluster";
    import { serveClusterMetrics } from ${JSON.stringify(METRICS)};
    if (cluster.isPrimary) {
      serveClusterMetrics(() => Object.values(cluster.workers).filter((w) => w.isConnected()));
      // prom-client waits up to 5 s for the gone worker's metrics, then the primary answers a worker that is no more.
      cluster.fork().on("exit", () => setTimeout(() => { console.log("primary alive"); process.exit(0); }, 6500));
    } else {
      // Asks for the combined metrics, then dies before the answer.
      process.send({ type: "tq:metrics", id: "gone" }, () => process.exit(0));
    }`;
  const { out, code } = await runPrimary(script);
  expect(out).toContain("primary alive");
  expect(out).not.toContain("ERR_IPC_CHANNEL_CLOSED");
  expect(code).toBe(0);
}, 20_000);

it("scrapes at once are answered from one gathering of the workers' metrics (at most one a second)", async () => {
  const script = `
    import cluster from "node:cluster";
    import { Gauge, Registry } from ${JSON.stringify(PROM_CLIENT)};
    import { serveClusterMetrics, shareWithPrimary } from ${JSON.stringify(METRICS)};
    if (cluster.isPrimary) {
      serveClusterMetrics(() => Object.values(cluster.workers).filter((w) => w.isConnected()));
      cluster.fork().on("exit", (code) => process.exit(code ?? 1));
    } else {
      let gathered = 0;
      const registry = new Registry();
      new Gauge({ name: "gathered", help: "times this worker was gathered", registers: [registry], collect() { this.set(++gathered); } });
      shareWithPrimary(registry);
      const texts = [];
      process.on("message", (m) => {
        if (m.type !== "tq:metrics-reply") return;
        texts.push(m.text);
        if (texts.length === 50) {
          console.log("gathered " + gathered + ", answers " + new Set(texts).size);
          process.exit(0);
        }
      });
      for (let i = 0; i < 50; i++) process.send({ type: "tq:metrics", id: String(i) });
    }`;
  const { out, code } = await runPrimary(script);
  expect(out).toContain("gathered 1, answers 1");
  expect(code).toBe(0);
}, 20_000);

it("a worker that does not answer (wedged, or still starting) does not fail the scrape, and the counters of a worker that exited stay in the sums", async () => {
  const script = `
    import cluster from "node:cluster";
    import { Counter, Registry } from ${JSON.stringify(PROM_CLIENT)};
    import { serveClusterMetrics, shareWithPrimary } from ${JSON.stringify(METRICS)};
    if (cluster.isPrimary) {
      const ready = new Set();
      serveClusterMetrics(() => [...ready].map((id) => cluster.workers[id]).filter((w) => w && w.isConnected()));
      cluster.on("message", (worker, m) => {
        if (m.type === "ready") ready.add(worker.id);
        if (m.type === "ready" && m.role === "first") cluster.fork({ ROLE: "silent" });
        if (m.type === "ready" && m.role === "silent") cluster.workers[1].send({ type: "go" });
      });
      cluster.fork({ ROLE: "first" }).on("exit", () => cluster.fork({ ROLE: "next" }).on("exit", (code) => { for (const w of Object.values(cluster.workers)) w.kill(); process.exit(code ?? 1); }));
    } else {
      const role = process.env.ROLE;
      const ask = (id) => new Promise((resolve) => {
        const startedAt = Date.now();
        process.on("message", (m) => m.type === "tq:metrics-reply" && m.id === id && resolve({ text: m.text, ms: Date.now() - startedAt }));
        process.send({ type: "tq:metrics", id });
      });
      if (role === "silent") {
        process.send({ type: "ready", role }); // and never answers the primary
      } else {
        const registry = new Registry();
        const calls = new Counter({ name: "calls_total", help: "calls", registers: [registry] });
        calls.inc(role === "first" ? 5 : 2);
        shareWithPrimary(registry);
        process.send({ type: "ready", role });
        if (role === "first") {
          process.on("message", async (m) => {
            if (m.type !== "go") return;
            const { text, ms } = await ask("a");
            console.log("first: " + text.match(/^calls_total .*$/m)?.[0] + " in " + (ms < 3000 ? "under 3 s" : ms + " ms"));
            process.exit(0);
          });
        } else {
          // (past the primary's once-a-second reuse of a gathering)
          setTimeout(async () => {
            const { text } = await ask("b");
            console.log("next: " + text.match(/^calls_total .*$/m)?.[0]);
            process.exit(0);
          }, 1100);
        }
      }
    }`;
  const { out, code } = await runPrimary(script);
  expect(out).toContain("first: calls_total 5 in under 3 s");
  expect(out).toContain("next: calls_total 7");
  expect(code).toBe(0);
}, 30_000);
