import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isListening } from "../../src/redis/local-redis.js";

/** A real Redis Cluster on loopback: 3 masters, 3 replicas, started and stopped by a test. */
export interface TestCluster {
  /** host:port of every node. */
  nodes: string[];
  /** Kills (SIGKILL) the node on `port`. */
  kill(port: number): void;
  dispose(): Promise<void>;
}

/** Ports below 55535: each node also listens on its port + 10000 (the cluster bus). */
async function freeBasePort(count: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20000 + Math.floor(Math.random() * 30000);
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
    const child = spawn(
      "redis-server",
      [
        "--port", String(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes", "--cluster-node-timeout", "2000",
        "--cluster-config-file", join(dir, `nodes-${port}.conf`), "--dir", dir, "--save", "", "--appendonly", "no",
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
  return {
    nodes: ports.map((p) => `127.0.0.1:${p}`),
    kill(port) {
      children.get(port)?.kill("SIGKILL");
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
