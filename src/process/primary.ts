import cluster, { type Worker } from "node:cluster";
import type { Logger } from "pino";
import type { Config } from "../config.js";
import { serveClusterMetrics } from "../observability/cluster-metrics.js";
import { ConnectionBalancer, READY, whenReady } from "./connection-balancer.js";
import type { RedisTarget } from "./redis-target.js";
import { onStopSignal } from "./signals.js";
import { watchWorkers } from "./worker-watchdog.js";

/**
 * V8 flags for each WORKER_GC. With a worker per core, V8's parallel GC helpers take
 * cores from the other workers and Redis, and concurrent marking added long pauses;
 * freeing dead ArrayBuffers, about half of a scavenge when done in the pause, is left
 * to V8's background sweeper. Measured on 2 cores at 6,000 gRPC Reserve/s (BENCHMARKS.md):
 * scavenges 1.0 ms against 2.0 ms with --single-threaded-gc. --no-parallel-marking is
 * not among them: Node 20's V8 aborts with it.
 */
const WORKER_GC_FLAGS: Record<Config["workerGc"], string[]> = {
  serial: ["--no-parallel-scavenge", "--no-parallel-compaction", "--no-parallel-pointer-update", "--no-concurrent-marking"],
  "single-threaded": ["--single-threaded-gc"],
  parallel: [],
};

/**
 * WORKERS > 1: a primary that forks the workers (they share the port and
 * nothing but Redis), replaces any that die, rolls them one by one on SIGHUP
 * (a new one listens before the old one drains), and on SIGTERM stops them all.
 */
export function runPrimary(config: Config, redis: RedisTarget, adminToken: string, log: Logger): void {
  // Workers read the resolved Redis and the token from their environment.
  const env = { REDIS_URL: redis.url, ADMIN_TOKEN: adminToken };
  const balancer = new ConnectionBalancer(config.maxConnections);
  cluster.setupPrimary({ execArgv: [...process.execArgv, ...WORKER_GC_FLAGS[config.workerGc]] });
  const fork = (): Worker => {
    const worker = cluster.fork(env);
    balancer.add(worker);
    return worker;
  };
  let stopping = false;
  const retiring = new Set<number>();
  // Workers that said they serve, and how many died in a row before they did.
  const served = new Set<number>();
  let servedOnce = false;
  let diedBeforeServing = 0;
  const serving = (): Worker[] => [...served].flatMap((id) => cluster.workers?.[id] ?? []).filter((worker) => worker.isConnected());
  serveClusterMetrics(serving);
  watchWorkers(serving, config.workerWatchdogMs, log, (worker, late) => balancer.setLate(worker, late));
  cluster.on("message", (worker, message: { type?: string }) => {
    // (a message can come after its worker's exit)
    if (message.type !== READY || worker.isDead()) return;
    served.add(worker.id);
    servedOnce = true;
    diedBeforeServing = 0;
  });
  for (let i = 0; i < config.workers; i++) fork();
  // Forks one if fewer than WORKERS serve or start, not counting those retiring (a roll forks
  // the new one first: a worker that dies then is replaced once the old one has left).
  const refill = (): void => {
    const live = Object.values(cluster.workers ?? {}).filter((w) => w && !w.isDead() && !retiring.has(w.id)).length;
    if (stopping || live >= config.workers) return;
    const worker = fork();
    log.info({ pid: worker.process.pid }, "started a worker in place of one that died");
  };
  cluster.on("exit", (worker, code, signal) => {
    const hadServed = served.delete(worker.id);
    if (stopping) return;
    if (retiring.delete(worker.id)) {
      refill();
      return;
    }
    if (hadServed) {
      log.warn({ pid: worker.process.pid, code, signal }, "worker died");
      refill();
      return;
    }
    // A worker that cannot start (its error is on stderr) would die again at once, forever.
    diedBeforeServing++;
    if (!servedOnce && diedBeforeServing > config.workers) {
      failed(`${diedBeforeServing} workers died before serving (their errors are above): stopping`);
      return;
    }
    const delayMs = Math.min(10_000, 100 * 2 ** diedBeforeServing);
    log.warn({ pid: worker.process.pid, code, signal, delayMs }, "worker died before serving; another after a pause");
    setTimeout(refill, delayMs);
  });
  log.info({ workers: config.workers }, "primary started its workers");
  // The port opens once a worker can take what arrives on it.
  void balancer.firstReady.then(() =>
    balancer.listen(config.port, config.host).then(
      (address) => log.info({ port: address.port, workers: config.workers }, "primary hands each new connection to the worker with the fewest"),
      (err: unknown) => failed(`cannot listen on ${config.host}:${config.port}: ${err instanceof Error ? err.message : String(err)}`),
    ),
  );

  let rolling = false;
  process.on("SIGHUP", () => {
    if (rolling || stopping) return;
    rolling = true;
    void (async () => {
      log.info("SIGHUP: replacing the workers one by one");
      for (const old of Object.values(cluster.workers ?? {})) {
        if (!old || old.isDead() || stopping || retiring.has(old.id)) continue;
        const fresh = fork();
        // (four watchdog spans to start: Redis may be slow to answer a new worker)
        if (!(await whenReady(fresh, 4 * config.workerWatchdogMs))) {
          log.warn({ pid: fresh.process.pid }, "the new worker died before it was ready: the old one stays");
          continue;
        }
        // An old worker that died meanwhile is replaced by the new one (refill counted it).
        if (old.isDead()) continue;
        const leaving = old;
        retiring.add(leaving.id);
        balancer.retire(leaving);
        // It sends GOAWAY, finishes its calls and exits.
        await new Promise<void>((resolve) => {
          leaving.once("exit", () => resolve());
          leaving.process.kill("SIGTERM");
        });
      }
      log.info("rolling restart done");
      rolling = false;
    })();
  });
  const failed = onStopSignal(log, async () => {
    stopping = true;
    void balancer.close(); // no new connections; the open ones drain in their workers
    const exits = Object.values(cluster.workers ?? {}).map(
      (worker) =>
        new Promise<void>((resolve) => {
          if (!worker || worker.isDead()) return resolve();
          worker.once("exit", () => resolve());
          worker.process.kill("SIGTERM");
        }),
    );
    await Promise.all(exits);
    await redis.local?.stop();
  });
}
