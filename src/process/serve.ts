import cluster from "node:cluster";
import { Socket } from "node:net";
import type { Logger } from "pino";
import { buildApp, type App } from "../app.js";
import type { Config } from "../config.js";
import { shareWithPrimary } from "../observability/cluster-metrics.js";
import { startTracing } from "../observability/tracing.js";
import { DurabilityError } from "../redis/durability.js";
import { RedisUnavailableError } from "../redis/redis-errors.js";
import { CLOSED, CONNECTION, DRAINING, READY } from "./connection-balancer.js";
import type { RedisTarget } from "./redis-target.js";
import { onStopSignal } from "./signals.js";
import { sayAlive } from "./worker-watchdog.js";

/**
 * One process serving the port: the only one (it listens itself), or a cluster
 * worker (it serves the connections its primary hands over and says when each
 * closes). Stops on SIGTERM or SIGINT.
 */
export async function serve(config: Config, redis: RedisTarget, adminToken: string, log: Logger): Promise<void> {
  // Before the app: its spans and log lines need the provider in place (off unless OTEL_* asks).
  const tracing = startTracing(process.env);
  let app: App;
  try {
    app = await buildApp({ config, redisUrl: redis.url, adminToken, log });
  } catch (err: unknown) {
    if (err instanceof DurabilityError || (config.durability === "strict" && err instanceof RedisUnavailableError)) {
      process.stderr.write(`ticket-queue: ${err.message}\n`);
      await redis.local?.stop();
      process.exit(1);
    }
    throw err;
  }
  let port = config.port;
  if (cluster.isWorker) {
    shareWithPrimary(app.metrics.registry);
    sayAlive(config.workerWatchdogMs);
    process.on("message", (message: { type?: string }, handle: unknown) => {
      if (message.type !== CONNECTION || !(handle instanceof Socket)) return;
      handle.on("close", tellPrimaryClosed);
      app.accept(handle);
    });
  } else {
    try {
      port = (await app.listen(config.port, config.host)).port;
    } catch (err: unknown) {
      // (EADDRINUSE, EACCES: the operator's to fix) A clear line, and the dev Redis this run started is stopped with it.
      process.stderr.write(`ticket-queue: cannot listen on ${config.host}:${config.port}: ${err instanceof Error ? err.message : String(err)}\n`);
      await app.stop(0);
      await redis.local?.stop();
      process.exit(1);
    }
  }
  log.info({ port, host: config.host, capacity: config.capacity }, "ticket-queue listening (gRPC, gRPC-web, Connect, REST)");
  if (cluster.isWorker) process.send?.({ type: READY });
  // Loads the ticket key now rather than on the first Reserve (retried then if Redis is not up yet).
  app.tickets.signingLibrary().then(
    (library) => log.info({ library }, "ticket signing key loaded"),
    () => undefined,
  );
  // SIGHUP rolls the workers, in the primary. Here it must not do node's default (exit at once,
  // dropping every call): with WORKERS=1 there is nothing to roll, and SIGTERM stops.
  process.on("SIGHUP", () => log.warn(cluster.isWorker ? "SIGHUP is the primary's (it rolls the workers): ignored by a worker" : "SIGHUP rolls the workers when WORKERS > 1; with one process there is nothing to roll: ignored (SIGTERM stops it)"));
  onStopSignal(log, async () => {
    // However the stop came (the primary, or a signal to this worker alone), no new connections come here.
    if (cluster.isWorker) process.send?.({ type: DRAINING });
    await app.stop();
    await tracing?.shutdown().catch((err: unknown) => log.warn({ err: String(err) }, "could not send the last spans"));
    await redis.local?.stop();
  });
  // A worker whose primary died exits at once (Node's cluster does that on disconnect);
  // one already draining may first fail to tell the dead primary that its listener
  // closed (EPIPE), which is no reason to crash with a stack trace.
  cluster.worker?.on("error", (err: unknown) => log.warn({ err }, "lost the channel to the primary"));
}

/** A worker's connection closed: the primary counts it (one function for every connection, not a closure each). */
function tellPrimaryClosed(): void {
  process.send?.({ type: CLOSED });
}
