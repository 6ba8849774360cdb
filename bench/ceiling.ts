// Redis's own ceiling for the service's reserve script: redis-benchmark running
// reserve-15.lua (includes inlined) by EVALSHA, a new user per call, on keys of
// its own (prefix bench-ceiling, removed afterwards). Used by `npm run bench`,
// and on its own against any Redis: `node dist/bench/ceiling.js [redis-url]`.
import { spawnSync } from "node:child_process";
import { pathToFileURL } from "node:url";
import { Redis } from "ioredis";
import { eventKeys, scriptKeys, solutionKey } from "../src/queue/keys.js";
import { scriptSource } from "../src/queue/scripts.js";

const PREFIX = "bench-ceiling";

/** Reserve-script calls per second that Redis itself sustains (redis-benchmark -c 50 -P 16). */
export async function redisCeiling(redisUrl: string, calls: number, capacity = 500): Promise<number> {
  const url = new URL(redisUrl);
  const redis = new Redis(redisUrl);
  try {
    const sha = String(await redis.script("LOAD", scriptSource("reserve-15.lua")));
    const keys = [...scriptKeys(PREFIX, "default"), solutionKey(PREFIX, "default", "none")];
    const auth = url.password ? ["-a", decodeURIComponent(url.password), "--no-auth-warning"] : [];
    const out = spawnSync(
      "redis-benchmark",
      ["-h", url.hostname, "-p", url.port || "6379", ...auth, "-n", String(calls), "-c", "50", "-P", "16", "-r", "1000000000", "--csv", "EVALSHA", sha, String(keys.length), ...keys, ...reserveArgs(capacity)],
      { encoding: "utf8" },
    );
    if (out.status !== 0) throw new Error(`redis-benchmark failed: ${out.stderr || out.error?.message}`);
    const line = out.stdout.trim().split("\n").at(-1) ?? "";
    return Number(line.split(",")[1]?.replaceAll('"', "") ?? 0);
  } finally {
    await redis.del(...eventKeys(PREFIX, "default"));
    redis.disconnect();
  }
}

/**
 * ARGV as QueueStore.reserve sends them (see reserve-15.lua's header) for a new
 * user without an idempotency key or proof of work; redis-benchmark puts a
 * random number in place of each __rand_int__.
 */
function reserveArgs(capacity: number): string[] {
  return ["u:__rand_int__", String(capacity), "0", "0000__rand_int__", "", "", "0", "0123456789abcdef0123456789abcdef", "1"];
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const url = process.argv[2] ?? process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379";
  const rps = await redisCeiling(url, Number(process.env["CALLS"] ?? 180_000));
  console.log(`Redis ceiling for reserve-15.lua on ${url}: ${rps.toFixed(0)} calls/s`);
}
