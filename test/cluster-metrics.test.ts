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

it("a worker that stops answering (wedged) counts with its last answer, and the counters of a worker that exited stay in the sums", async () => {
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
      const registry = new Registry();
      const calls = new Counter({ name: "calls_total", help: "calls", registers: [registry] });
      calls.inc({ first: 5, silent: 10, next: 2 }[role]);
      shareWithPrimary(registry);
      if (role === "silent") {
        // Answers the first gathering, then never again.
        process.on("message", (m) => m.type === "tq:metrics-get" && setImmediate(() => process.removeAllListeners("message")));
        process.send({ type: "ready", role });
      } else {
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
  expect(out).toContain("first: calls_total 15 in under 3 s");
  // next's 2, the silent worker's last 10, and the 5 of the first, which exited
  expect(out).toContain("next: calls_total 17");
  expect(code).toBe(0);
}, 30_000);

const PROCESS = pathToFileURL(resolve("dist/src/process")).href;

it("the watchdog keeps a busy worker that is handed many connections at once (what the primary sends waits behind them) and kills a stuck one", async () => {
  const script = `
    import cluster from "node:cluster";
    import net from "node:net";
    const { ConnectionBalancer, READY } = await import(${JSON.stringify(PROCESS)} + "/connection-balancer.js");
    const { watchWorkers, sayAlive } = await import(${JSON.stringify(PROCESS)} + "/worker-watchdog.js");
    const LIMIT_MS = 2000;
    if (cluster.isPrimary) {
      const balancer = new ConnectionBalancer(50_000);
      const worker = cluster.fork();
      balancer.add(worker);
      let serving = false;
      worker.on("message", (m) => m.type === READY && (serving = true));
      const log = { error: (_o, m) => console.log(m), warn() {}, info() {} };
      watchWorkers(() => (serving && !worker.isDead() ? [worker] : []), LIMIT_MS, log, (_w, late) => console.log("late " + late));
      await balancer.firstReady;
      const { port } = await balancer.listen(0, "127.0.0.1");
      // 600 connections at once: each hand-over waits for the busy worker's acknowledgement.
      for (let i = 0; i < 600; i++) net.connect(port, "127.0.0.1").on("error", () => undefined);
      setTimeout(() => { console.log("busy worker kept"); worker.send({ type: "stop" }); }, 3 * LIMIT_MS);
      worker.on("exit", (_c, signal) => { console.log("worker ended by " + signal); process.exit(0); });
    } else {
      sayAlive(LIMIT_MS);
      // Busy but healthy: each turn of its event loop takes 10 ms; it takes and answers every connection.
      const cell = new Int32Array(new SharedArrayBuffer(4));
      let spinning = true;
      const spin = () => { if (!spinning) return; Atomics.wait(cell, 0, 0, 10); setImmediate(spin); };
      spin();
      process.on("message", (m, socket) => {
        if (m.type === "tq:connection" && socket) socket.end("hi\\n");
        // Then stuck for good: the watchdog must kill it.
        if (m.type === "stop") { spinning = false; setImmediate(() => Atomics.wait(cell, 0, 0)); }
      });
      process.send({ type: READY });
    }`;
  const { out, code } = await runPrimary(script);
  expect(out).toContain("busy worker kept");
  expect(out.indexOf("late true")).toBeGreaterThan(out.indexOf("busy worker kept"));
  expect(out.indexOf("worker stopped answering")).toBeGreaterThan(out.indexOf("busy worker kept"));
  expect(out).toContain("worker ended by SIGKILL");
  expect(code).toBe(0);
}, 30_000);
