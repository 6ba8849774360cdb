// npm run bench:cluster: gRPC Reserve driven by h2load against the service on the
// test Redis Cluster (3 masters, 3 replicas, as `npm run test:cluster` starts it),
// beside the same against one redis-server, in one run and alternated (standalone,
// cluster, standalone, cluster), as a ratio. Every accepted user must be recorded
// once. The opening burst on the cluster: BURST_REDIS_CLUSTER=1 npm run bench:burst.
// Not a test: timings never decide anything.
import { spawn, spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { createRedisClient } from "../src/redis/redis-client.js";
import { startTestCluster } from "../test/helpers/redis-cluster.js";
import { freePort, waitListening } from "./ports.js";
import { recordedUsers } from "./recorded.js";
import { benchScratch, startOwnRedis } from "./scratch.js";
import { reserveNewUser } from "./scenarios.js";

const WORKERS = Number(process.env["WORKERS"] ?? availableParallelism());
const REQUESTS = Number(process.env["BENCH_REQUESTS"] ?? 60_000);
const CONNECTIONS = 8;
const CONCURRENCY = 16;
/** A Reserve answer with its ticket is about 400 bytes; an error answer carries none. */
const MIN_ANSWER_BYTES = 200;

if (spawnSync("sh", ["-c", "command -v h2load"]).status !== 0) {
  console.log("h2load is missing (Debian: apt-get install -y nghttp2-client)");
  process.exit(1);
}
const scratch = benchScratch("bench-cluster");
const { children, dir } = scratch;
const redisPort = await startOwnRedis(scratch);
const cluster = await startTestCluster();
const redisUrl = `redis://127.0.0.1:${redisPort}`;
// The service's own clients (createRedisClient) for the checks.
const standalone = { name: "one redis-server", env: { REDIS_URL: redisUrl }, client: createRedisClient({ url: redisUrl, commandTimeoutMs: 10_000 }) };
const onCluster = {
  name: "Redis Cluster, 3 masters + 3 replicas",
  env: { REDIS_URL: redisUrl, REDIS_CLUSTER_NODES: cluster.nodes.join(",") },
  client: createRedisClient({ url: redisUrl, clusterNodes: cluster.nodes, commandTimeoutMs: 10_000 }),
};
await standalone.client.connect();
await onCluster.client.connect();
const body = join(dir, "reserve.bin");
writeFileSync(body, reserveNewUser("grpc").body);
console.log(`gRPC Reserve, h2load -n ${REQUESTS} -c ${CONNECTIONS} -m ${CONCURRENCY}, WORKERS=${WORKERS}, a new user per call on the default event`);

const runs: { target: string; rps: number; check: string }[] = [];
for (const target of [standalone, onCluster, standalone, onCluster]) {
  const prefix = `bench-cluster-${runs.length}`;
  const port = await freePort();
  const service = spawn(process.execPath, ["dist/src/main.js"], {
    env: { ...process.env, ...target.env, PORT: String(port), HOST: "127.0.0.1", WORKERS: String(WORKERS), ADMIN_TOKEN: "bench-token", KEY_PREFIX: prefix, CAPACITY: "500", LOG_LEVEL: "warn", RATE_LIMIT_PER_MINUTE: "0", REDIS_COMMAND_TIMEOUT_MS: "5000" },
    stdio: ["ignore", "ignore", "inherit"],
  });
  children.push(service);
  await waitListening(port);
  await new Promise((r) => setTimeout(r, 1000)); // every worker up
  // A warm-up, then the measured run.
  spawnSync("h2load", ["-n", "2000", "-c", String(CONNECTIONS), "-m", String(CONCURRENCY), "-d", body, "-H", "content-type: application/grpc", "-H", "te: trailers", `http://127.0.0.1:${port}/ticketqueue.v1.TicketQueueService/Reserve`]);
  const before = await recordedUsers(target.client, prefix, "default");
  const out = spawnSync("h2load", ["-n", String(REQUESTS), "-c", String(CONNECTIONS), "-m", String(CONCURRENCY), "-d", body, "-H", "content-type: application/grpc", "-H", "te: trailers", `http://127.0.0.1:${port}/ticketqueue.v1.TicketQueueService/Reserve`], { encoding: "utf8" }).stdout;
  const after = await recordedUsers(target.client, prefix, "default");
  const rps = Number(/finished in [\d.]+s, ([\d.]+) req\/s/.exec(out)?.[1] ?? 0);
  const dataPerCall = Number(/\((\d+)\) data/.exec(out)?.[1] ?? 0) / REQUESTS;
  const added = after.total - before.total;
  const ok = added === REQUESTS && after.duplicates === 0 && after.seats <= 500 && dataPerCall >= MIN_ANSWER_BYTES;
  runs.push({ target: target.name, rps, check: `${ok ? "verified" : "MISMATCH"}: ${added} users recorded for ${REQUESTS} calls, ${after.duplicates} both seated and waiting, ${after.seats} seats ≤ 500, ${dataPerCall.toFixed(0)} response bytes per call` });
  const stopped = new Promise((resolve) => service.once("exit", resolve));
  service.kill("SIGTERM");
  await Promise.race([stopped, new Promise((r) => setTimeout(r, 15_000))]);
}

const mean = (name: string): number => {
  const of = runs.filter((r) => r.target === name);
  return of.reduce((n, r) => n + r.rps, 0) / of.length;
};
console.log(
  [
    "",
    "| Redis | req/s | check |",
    "|---|---|---|",
    ...runs.map((r) => `| ${r.target} | ${r.rps.toFixed(0)} | ${r.check} |`),
    "",
    `gRPC Reserve on the cluster: **${(mean(onCluster.name) / mean(standalone.name)).toFixed(2)} ×** one redis-server (means of two runs each; one event lives on one shard, so its Reserves all go to one master)`,
  ].join("\n"),
);
standalone.client.disconnect();
onCluster.client.disconnect();
await cluster.dispose();
for (const c of children) c.kill("SIGTERM");
process.exit(0);

