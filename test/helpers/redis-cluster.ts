import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isListening } from "../../src/redis/local-redis.js";

/** A real Redis Cluster on loopback: 3 masters, 3 replicas, started and stopped by a test. */
export interface TestCluster {
  /** host:port of every node. */
  nodes: string[];
  /**
   * Waits until every replica's link to its master is up and it has caught up
   * with the master's offset. A replica still in its first full sync has no data
   * (promoted, it would answer "event does not exist") and, its data being old,
   * refuses to fail over at all.
   */
  replicasInSync(): Promise<void>;
  /** Kills (SIGKILL) the node on `port`, or sends it another signal (SIGSTOP: hung). */
  kill(port: number, signal?: NodeJS.Signals): void;
  dispose(): Promise<void>;
}

/**
 * Each node also listens on its port + 10000 (the cluster bus). Both stay below
 * Linux's ephemeral range (32768 and up), where an outgoing connection could take
 * a port between the check and the node's start.
 */
async function freeBasePort(count: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20000 + Math.floor(Math.random() * 2700);
    const ports = Array.from({ length: count }, (_, i) => base + i).flatMap((p) => [p, p + 10000]);
    const busy = await Promise.all(ports.map((p) => isListening("127.0.0.1", p, 100)));
    if (!busy.some(Boolean)) return base;
  }
  throw new Error("no free block of ports for a cluster");
}

export async function startTestCluster(extraArgs: string[] = []): Promise<TestCluster> {
  const base = await freeBasePort(6);
  const dir = mkdtempSync(join(tmpdir(), "tq-cluster-"));
  const children = new Map<number, ChildProcess>();
  const ports = Array.from({ length: 6 }, (_, i) => base + i);
  for (const port of ports) {
    // A directory per node: with AOF on, nodes sharing one would share appendonlydir.
    const nodeDir = join(dir, String(port));
    mkdirSync(nodeDir);
    const child = spawn(
      "redis-server",
      [
        "--port", String(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes", "--cluster-node-timeout", "2000",
        "--cluster-config-file", join(nodeDir, "nodes.conf"), "--dir", nodeDir, "--save", "", "--appendonly", "no",
        "--repl-diskless-sync-delay", "0", ...extraArgs,
      ],
      { stdio: "ignore" },
    );
    children.set(port, child);
  }
  for (const port of ports) {
    for (let i = 0; i < 100 && !(await isListening("127.0.0.1", port)); i++) await new Promise((r) => setTimeout(r, 50));
  }
  const create = spawnSync("redis-cli", ["--cluster", "create", ...ports.map((p) => `127.0.0.1:${p}`), "--cluster-replicas", "1", "--cluster-yes"], { encoding: "utf8" });
  if (create.status !== 0) throw new Error(`redis-cli --cluster create failed: ${create.stdout} ${create.stderr}`);
  for (let i = 0; i < 100; i++) {
    const info = spawnSync("redis-cli", ["-p", String(base), "cluster", "info"], { encoding: "utf8" }).stdout;
    if (/cluster_state:ok/.test(info)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  await replicasInSync(ports);
  return {
    nodes: ports.map((p) => `127.0.0.1:${p}`),
    replicasInSync: () => replicasInSync(ports.filter((p) => children.get(p)?.exitCode === null && children.get(p)?.signalCode === null)),
    kill(port, signal = "SIGKILL") {
      children.get(port)?.kill(signal);
    },
    async dispose() {
      await Promise.all(
        [...children.values()].map(
          (c) =>
            new Promise<void>((resolve) => {
              if (c.exitCode !== null || c.signalCode !== null) return resolve();
              c.once("exit", () => resolve());
              c.kill("SIGKILL");
            }),
        ),
      );
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function info(port: number): Map<string, string> {
  const text = spawnSync("redis-cli", ["-p", String(port), "info", "replication"], { encoding: "utf8" }).stdout;
  return new Map(text.split("\r\n").flatMap((line) => {
    const at = line.indexOf(":");
    return at > 0 ? [[line.slice(0, at), line.slice(at + 1)] as [string, string]] : [];
  }));
}

async function replicasInSync(ports: readonly number[], timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const infos = new Map(ports.map((p) => [p, info(p)]));
    const lagging = [...infos].filter(([, r]) => {
      if (r.get("role") !== "slave") return false;
      const master = infos.get(Number(r.get("master_port")));
      const masterOffset = Number(master?.get("master_repl_offset") ?? 0);
      return r.get("master_link_status") !== "up" || Number(r.get("slave_repl_offset") ?? -1) < masterOffset;
    });
    const replicas = [...infos.values()].filter((r) => r.get("role") === "slave").length;
    if (replicas > 0 && lagging.length === 0) return;
    if (Date.now() > deadline) throw new Error(`replicas not in sync after ${timeoutMs} ms: ${lagging.map(([p]) => p).join(", ")}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
