// npm run bench: the service against Redis's own ceiling, a plain grpc-js server
// (what a Node user would write instead) and a grpc-js server running our own
// handlers, in one run on this machine. Throughput is reported as ratios within the
// run (the machine is shared and noisy); a timing never fails anything.
import { spawn, spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { redisCeiling } from "./ceiling.js";
import { recordedUsers } from "./recorded.js";
import { runLoad, type LoadOptions, type LoadResult } from "./load-generator.js";
import { freePort, waitListening } from "./ports.js";
import { benchScratch, startOwnRedis } from "./scratch.js";
import { mixed, reserveNewUser, type Transport } from "./scenarios.js";

const WORKERS = Number(process.env["WORKERS"] ?? availableParallelism());
const REQUESTS = Number(process.env["BENCH_REQUESTS"] ?? 60_000);
const CONNECTIONS = Number(process.env["BENCH_CONNECTIONS"] ?? 8);
const CONCURRENCY = Number(process.env["BENCH_CONCURRENCY"] ?? 16);
const ADMIN_TOKEN = "bench-token";
const CAPACITY = 500;
/** A Reserve answer with its ticket is about 400 bytes, the plain server's (no ticket) about 60; an error answer carries none. */
const MIN_RESERVE_ANSWER_BYTES = 200;
const MIN_PLAIN_ANSWER_BYTES = 40;
/** HTTP/1.1 connections for wrk: each one request at a time, like a browser's page. */
const WRK_CONNECTIONS = Number(process.env["BENCH_WRK_CONNECTIONS"] ?? CONNECTIONS * CONCURRENCY);
const WRK_SECONDS = Number(process.env["BENCH_WRK_SECONDS"] ?? 10);

interface Row {
  name: string;
  result: LoadResult;
  note?: string;
}

const rows: Row[] = [];
const scratch = benchScratch("bench");
const { children, dir: redisDir } = scratch;
const redisPort = await startOwnRedis(scratch);
const redis = new Redis(redisPort, "127.0.0.1");
const redisUrl = `redis://127.0.0.1:${redisPort}`;

console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, Node ${process.version}, WORKERS=${WORKERS}`);
console.log(`load: ${REQUESTS} requests, ${CONNECTIONS} HTTP/2 connections × ${CONCURRENCY} in flight (closed loop)\n`);

// 1. The ceiling: Redis running the service's own reserve script, new user each call.
// Measured again at the end: the host's share of the cores moves within a run, and
// the ratios use the mean of the two.
const ceilingAtStart = await redisCeiling(redisUrl, REQUESTS * 3, CAPACITY);
console.log(`ceiling: redis-benchmark EVALSHA reserve-15.lua: ${ceilingAtStart.toFixed(0)} calls/s (measured again at the end)`);

// 2. The service and the two grpc-js references, same Redis, same WORKERS, same load flags.
const ours = await startTarget("ours", ["dist/src/main.js"]);
const plain = await startTarget("plain", ["dist/bench/plain-grpc-js-server.js"]);
const reference = await startTarget("grpc-js", ["dist/bench/grpc-js-server.js"]);
const pipelined = await startTarget("ours-autopipelining", ["dist/src/main.js"], { REDIS_AUTO_PIPELINING: "true" });

await redis.config("RESETSTAT");
await measureReserve("gRPC Reserve (ticket-queue, Connect)", ours, "grpc");
const { perCall: commandsPerReserve, detail: commandsDetail } = await commandsPer(REQUESTS + Math.round(REQUESTS / 10));
await measureReserve("gRPC Reserve (plain @grpc/grpc-js server, no tickets)", plain, "grpc");
await measureReserve("gRPC Reserve (@grpc/grpc-js running our handlers)", reference, "grpc");
await measureReserve("Connect JSON Reserve", ours, "connect-json");
await measureReserve("REST POST /reserve", ours, "rest");

const best = rows[0]?.result.rps ?? 0;
const half = await load(ours, { requests: Math.min(REQUESTS, Math.round(best * 10)), rate: Math.round(best / 2), request: () => reserveNewUser("grpc") });
rows.push({ name: `gRPC Reserve at half the max (${Math.round(best / 2)}/s, open loop)`, result: half });
// The same open loop against a server that does nothing: the generator's own share of that latency.
const noop = await startTarget("noop", ["dist/bench/noop-grpc-server.js"]);
const floor = await load(noop, { requests: Math.min(REQUESTS, Math.round(best * 10)), rate: Math.round(best / 2), request: () => reserveNewUser("grpc") });
rows.push({ name: `no-op HTTP/2 responder at the same rate (the load generator's floor)`, result: floor, note: "no Redis, no handler: latency the generator and the shared cores add by themselves" });

for (const transport of ["grpc", "connect-json", "rest"] as Transport[]) {
  const result = await load(ours, { requests: REQUESTS, request: mixed(transport, ADMIN_TOKEN) });
  rows.push({ name: `mix 4:3:2:1:1 over ${transport}`, result });
}

// h2load (C, lighter than the Node generator on a 2-core machine) for the headline ratio.
// The auto-pipelining variant goes first: if running earlier helps (fewer users in
// Redis, a fresher host), it helps the alternative, not the default.
const h2Pipelined = await h2loadReserve(pipelined);
const h2Ours = await h2loadReserve(ours);
const h2Plain = await h2loadReserve(plain, "grpc", MIN_PLAIN_ANSWER_BYTES);
const h2Ref = await h2loadReserve(reference);
// Connect JSON and REST with the same tool and flags (the Node generator above takes more of the cores).
const h2ConnectJson = await h2loadReserve(ours, "connect-json");
const h2Rest = await h2loadReserve(ours, "rest");
// The browser's path: HTTP/1.1 keep-alive, one request at a time per connection
// (wrk), over gRPC-web, REST and Connect JSON; then gRPC again with h2load, so that
// the ratios compare runs made next to each other.
const browser: { transport: WrkTransport; run: WrkRun }[] = [];
for (const transport of ["grpc-web", "rest", "connect-json"] as WrkTransport[]) {
  const run = await wrkReserve(ours, transport);
  if (run) browser.push({ transport, run });
}
const h2OursAgain = browser.length > 0 ? await h2loadReserve(ours) : undefined;
// Latency at half of h2load's max, open loop, from h2load's per-request log (its
// floor is lower than the Node generator's), and the no-op server at the same rate.
const h2Half = h2Ours ? Math.round(h2Ours.rps / 2) : 0;
const h2HalfOurs = h2Ours ? h2loadOpenLoop(ours, h2Half) : undefined;
const h2HalfNoop = h2Ours ? h2loadOpenLoop(noop, h2Half) : undefined;

const ceilingAtEnd = await redisCeiling(redisUrl, REQUESTS * 3, CAPACITY);
const ceiling = (ceilingAtStart + ceilingAtEnd) / 2;
report();
for (const c of children) c.kill("SIGTERM");
redis.disconnect();
process.exit(0);

interface Target {
  name: string;
  port: number;
  prefix: string;
}

async function startTarget(name: string, args: string[], extraEnv: Record<string, string> = {}): Promise<Target> {
  const port = await freePort();
  const prefix = `bench-${name}-${Date.now()}`;
  const child = spawn(process.execPath, args, {
    env: { ...process.env, PORT: String(port), HOST: "127.0.0.1", REDIS_URL: redisUrl, WORKERS: String(WORKERS), ADMIN_TOKEN, KEY_PREFIX: prefix, CAPACITY: String(CAPACITY), LOG_LEVEL: "warn", REDIS_COMMAND_TIMEOUT_MS: "5000", RATE_LIMIT_PER_MINUTE: "0", ...extraEnv },
    stdio: ["ignore", "ignore", "inherit"],
  });
  children.push(child);
  await waitListening(port);
  await new Promise((r) => setTimeout(r, 500)); // every worker up
  return { name, port, prefix };
}

async function load(target: Target, options: Omit<LoadOptions, "url" | "connections" | "concurrency">): Promise<LoadResult> {
  return runLoad({ url: `http://127.0.0.1:${target.port}`, connections: CONNECTIONS, concurrency: CONCURRENCY, ...options });
}

/** A warm-up, then a measured Reserve-only run whose every accepted user must be in Redis exactly once. */
async function measureReserve(name: string, target: Target, transport: Transport): Promise<void> {
  await load(target, { requests: Math.round(REQUESTS / 10), request: () => reserveNewUser(transport) });
  const before = await recorded(target);
  const result = await load(target, { requests: REQUESTS, request: () => reserveNewUser(transport) });
  const after = await recorded(target);
  const added = after.total - before.total;
  const exact = added === result.ok && after.seats <= CAPACITY && after.duplicates === 0;
  rows.push({ name, result, note: `${exact ? "verified" : "MISMATCH"}: ${added} users recorded for ${result.ok} accepted, ${after.seats} seats ≤ ${CAPACITY}` });
}

function recorded(target: Target): Promise<{ total: number; seats: number; duplicates: number }> {
  return recordedUsers(redis, target.prefix, "default");
}

/**
 * Script calls per Reserve, from INFO commandstats since RESETSTAT (the hold
 * sweeper's few calls a second are included; the runner's own counting reads are not).
 */
async function commandsPer(calls: number): Promise<{ perCall: number; detail: string }> {
  const stats = await redis.info("commandstats");
  const ours = new Set(["hlen", "zcard", "hkeys", "zmscore", "info", "config|resetstat"]);
  const counts = [...stats.matchAll(/^cmdstat_([\w|]+):calls=(\d+)/gm)].map((m) => [m[1] ?? "", Number(m[2])] as const).filter(([name]) => !ours.has(name));
  const scripts = counts.filter(([name]) => name === "evalsha" || name === "eval").reduce((sum, [, n]) => sum + n, 0);
  return { perCall: scripts / calls, detail: counts.map(([name, n]) => `${name} ${n}`).join(", ") };
}

interface H2loadRun {
  rps: number;
  summary: string;
  check: string;
}

/** h2load's arguments for a new user's Reserve over `transport`: the body (in a file, for -d), headers and URL. */
function h2loadReserveRequest(target: Target, transport: Transport): string[] {
  const request = reserveNewUser(transport);
  const file = join(redisDir, `reserve-${transport}.bin`);
  writeFileSync(file, request.body);
  const headers = ["-H", `content-type: ${request.contentType}`, ...(transport === "grpc" ? ["-H", "te: trailers"] : [])];
  return ["-d", file, ...headers, `http://127.0.0.1:${target.port}${request.path}`];
}

/** Reserve driven by h2load (gRPC unless told); h2load cannot read grpc-status, so Redis's count is the check. */
async function h2loadReserve(target: Target, transport: Transport = "grpc", minAnswerBytes = MIN_RESERVE_ANSWER_BYTES): Promise<H2loadRun | undefined> {
  if (spawnSync("sh", ["-c", "command -v h2load"]).status !== 0) return undefined;
  const before = await recorded(target);
  const out = spawnSync(
    "h2load",
    ["-n", String(REQUESTS), "-c", String(CONNECTIONS), "-m", String(CONCURRENCY), ...h2loadReserveRequest(target, transport)],
    { encoding: "utf8" },
  ).stdout;
  const after = await recorded(target);
  const added = after.total - before.total;
  const rps = Number(/finished in [\d.]+s, ([\d.]+) req\/s/.exec(out)?.[1] ?? 0);
  // h2load counts any HTTP 200 as a success, and a gRPC error is one: an error answer
  // has no message (and a JSON error is a few dozen bytes), so the DATA bytes show
  // whether the answers carried responses.
  const dataPerCall = Number(/\((\d+)\) data/.exec(out)?.[1] ?? 0) / REQUESTS;
  const answered = dataPerCall >= minAnswerBytes;
  const check = `${added === REQUESTS && after.duplicates === 0 && answered ? "verified" : "MISMATCH"}: ${added} users recorded for ${REQUESTS} calls, ${dataPerCall.toFixed(0)} response bytes per call`;
  return { rps, summary: out.split("\n").filter((l) => /finished in|requests:|status codes/.test(l)).join("\n"), check };
}

type WrkTransport = "grpc-web" | "rest" | "connect-json";

interface WrkRun {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  check: string;
}

/** The request wrk sends for a new user's Reserve: a Lua script setting method, headers and body. */
function wrkScript(transport: WrkTransport): string {
  const [path, contentType, body, extra] =
    transport === "grpc-web"
      ? ["/ticketqueue.v1.TicketQueueService/Reserve", "application/grpc-web+proto", "\\0\\0\\0\\0\\0", 'wrk.headers["X-Grpc-Web"] = "1"\n']
      : transport === "rest"
        ? ["/reserve", "application/json", "{}", ""]
        : ["/ticketqueue.v1.TicketQueueService/Reserve", "application/json", "{}", ""];
  return `wrk.method = "POST"\nwrk.path = "${path}"\nwrk.body = "${body}"\nwrk.headers["Content-Type"] = "${contentType}"\n${extra}`;
}

/**
 * Reserve over HTTP/1.1 keep-alive with wrk (C), for WRK_SECONDS. wrk sees HTTP
 * statuses only (a gRPC-web error is an HTTP 200): Redis's count is the check.
 * Calls cut off when wrk stops may be recorded without being counted (one run
 * here saw 152 over 128 connections), so up to two per connection more are allowed;
 * fewer recorded than answered is a loss.
 */
async function wrkReserve(target: Target, transport: WrkTransport): Promise<WrkRun | undefined> {
  if (spawnSync("sh", ["-c", "command -v wrk"]).status !== 0) return undefined;
  const script = join(redisDir, `reserve-${transport}.lua`);
  writeFileSync(script, wrkScript(transport));
  const before = await recorded(target);
  const out = spawnSync("wrk", ["-t", "2", "-c", String(WRK_CONNECTIONS), "-d", `${WRK_SECONDS}s`, "--latency", "-s", script, `http://127.0.0.1:${target.port}`], { encoding: "utf8" }).stdout;
  const after = await recorded(target);
  const added = after.total - before.total;
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
  const failed = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0) + [...out.matchAll(/(?:connect|read|write|timeout) (\d+)/g)].reduce((sum, m) => sum + Number(m[1]), 0);
  const ms = (label: string): number => {
    const m = new RegExp(`^\\s+${label}%\\s+([\\d.]+)(us|ms|s)`, "m").exec(out);
    return m ? Number(m[1]) * (m[2] === "us" ? 0.001 : m[2] === "s" ? 1000 : 1) : 0;
  };
  const exact = failed === 0 && requests > 0 && added >= requests && added <= requests + 2 * WRK_CONNECTIONS && after.duplicates === 0;
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0),
    p50Ms: ms("50"),
    p99Ms: ms("99"),
    check: `${exact ? "verified" : "MISMATCH"}: ${added} users recorded for ${requests} answers, ${failed} failed`,
  };
}

interface Latencies {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  /** p99 over every call, the first second included. */
  p99AllMs: number;
}

/**
 * gRPC Reserve at a fixed total rate, percentiles from h2load's --log-file.
 * h2load's --rps timer fires at most every 10 ms and sends all that is due at once,
 * and connections opened together fire together: 8 connections at 4,000/s were
 * bursts of 40 calls every 10 ms, whose wait to be served is most of what such a
 * run measures. Here the same connections as the max run open a tenth of them a
 * millisecond (8: 1 ms apart), so their ticks spread over the 10 ms (8 at 7,000/s:
 * about 9 calls every 1.25 ms).
 * (One connection per 100 calls/s, each sending one call a tick, spreads them
 * further but costs more per call: 70 connections at 7,000/s overloaded 2 cores.)
 */
function h2loadOpenLoop(target: Target, rate: number): Latencies | undefined {
  const log = join(redisDir, `latency-${target.name}.tsv`);
  const requests = Math.min(REQUESTS, rate * 10);
  const out = spawnSync(
    "h2load",
    [
      ...["-n", String(requests), "-c", String(CONNECTIONS), "-m", String(CONCURRENCY)],
      ...["-r", String(Math.ceil(CONNECTIONS / 10)), "--rate-period", "1ms", "--rps", String(Math.max(1, Math.round(rate / CONNECTIONS)))],
      ...["--log-file", log, ...h2loadReserveRequest(target, "grpc")],
    ],
    { encoding: "utf8" },
  ).stdout;
  // Columns: start (µs since epoch), HTTP status, µs until the end of the response.
  const calls = readFileSync(log, "utf8").trim().split("\n").map((line) => line.split("\t").map(Number)).filter(([start, , micros]) => Number.isFinite(start) && Number.isFinite(micros));
  if (calls.length === 0) return undefined;
  // The steady state: calls started in the first second, while the connections open
  // and are handed to the workers, are left out of p50/p99/p99.9 (not of p99AllMs).
  const firstStart = calls.reduce((first, [start = 0]) => Math.min(first, start), Infinity);
  const percentile = (sample: number[][], q: number): number => {
    const sorted = sample.map(([, , micros = 0]) => micros).sort((a, b) => a - b);
    return (sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))] ?? 0) / 1000;
  };
  const steady = calls.filter(([start = 0]) => start >= firstStart + 1_000_000);
  return {
    rps: Number(/finished in [\d.]+s, ([\d.]+) req\/s/.exec(out)?.[1] ?? 0),
    p50Ms: percentile(steady, 0.5),
    p99Ms: percentile(steady, 0.99),
    p999Ms: percentile(steady, 0.999),
    p99AllMs: percentile(calls, 0.99),
  };
}

function report(): void {
  const reserveOurs = rows.find((r) => r.name.startsWith("gRPC Reserve (ticket-queue"))?.result.rps ?? 0;
  const reservePlain = rows.find((r) => r.name.startsWith("gRPC Reserve (plain"))?.result.rps ?? 0;
  const reserveRef = rows.find((r) => r.name.startsWith("gRPC Reserve (@grpc/grpc-js"))?.result.rps ?? 0;
  const lines = [
    "| run | req/s | × ceiling | p50 ms | p99 ms | p99.9 ms | errors | check |",
    "|---|---:|---:|---:|---:|---:|---:|---|",
    ...rows.map(
      (r) =>
        `| ${r.name} | ${r.result.rps.toFixed(0)} | ${(r.result.rps / ceiling).toFixed(3)} | ${r.result.p50Ms.toFixed(2)} | ${r.result.p99Ms.toFixed(2)} | ${r.result.p999Ms.toFixed(2)} | ${r.result.errors}${Object.keys(r.result.errorCodes).length ? ` (${Object.entries(r.result.errorCodes).map(([k, v]) => `${k}: ${v}`).join(", ")})` : ""} | ${r.note ?? ""} |`,
    ),
    "",
    `Redis ceiling (redis-benchmark, reserve-15.lua, -c 50 -P 16): ${ceiling.toFixed(0)} calls/s, the mean of ${ceilingAtStart.toFixed(0)} at the start and ${ceilingAtEnd.toFixed(0)} at the end`,
    `gRPC Reserve: ${(reserveOurs / ceiling).toFixed(3)} × the ceiling, ${(reserveOurs / reservePlain).toFixed(2)} × the plain grpc-js server, ${(reserveOurs / reserveRef).toFixed(2)} × grpc-js running our handlers`,
  ];
  if (h2Ours && h2Plain && h2Ref) {
    const row = (name: string, run: H2loadRun): string =>
      `| ${name} | ${run.rps.toFixed(0)} | ${(run.rps / ceiling).toFixed(3)} | ${(run.rps / h2Plain.rps).toFixed(2)} | ${(run.rps / h2Ref.rps).toFixed(2)} | ${run.check} |`;
    lines.push(
      "",
      `h2load, gRPC Reserve (new user per call, -c ${CONNECTIONS} -m ${CONCURRENCY}):`,
      `| server | req/s | × ceiling | × plain grpc-js | × grpc-js with our handlers | check |`,
      `|---|---:|---:|---:|---:|---|`,
      row("ticket-queue", h2Ours),
      row("plain @grpc/grpc-js (proto-loader, one Lua call, no tickets)", h2Plain),
      row("@grpc/grpc-js running our handlers (tickets and all)", h2Ref),
      ...(h2Pipelined ? [row("ticket-queue, REDIS_AUTO_PIPELINING=true (run first)", h2Pipelined)] : []),
    );
  }
  if (browser.length > 0 && h2OursAgain) {
    lines.push(
      "",
      `The browser's path: wrk, HTTP/1.1 keep-alive, ${WRK_CONNECTIONS} connections (one call at a time each), ${WRK_SECONDS} s each, new user per call; × gRPC is against h2load's gRPC Reserve run right after (${h2OursAgain.rps.toFixed(0)}/s, ${h2OursAgain.check}):`,
      "| transport | req/s | × gRPC | p50 ms | p99 ms | check |",
      "|---|---:|---:|---:|---:|---|",
      ...browser.map(({ transport, run }) => `| ${transport} | ${run.rps.toFixed(0)} | ${(run.rps / h2OursAgain.rps).toFixed(2)} | ${run.p50Ms.toFixed(2)} | ${run.p99Ms.toFixed(2)} | ${run.check} |`),
    );
  }
  if (h2ConnectJson && h2Rest) {
    lines.push(
      "",
      `h2load, Reserve over Connect JSON and REST (new user per call, -c ${CONNECTIONS} -m ${CONCURRENCY}, body {}):`,
      `| transport | req/s | × ceiling | check |`,
      `|---|---:|---:|---|`,
      `| Connect JSON (POST /ticketqueue.v1.TicketQueueService/Reserve) | ${h2ConnectJson.rps.toFixed(0)} | ${(h2ConnectJson.rps / ceiling).toFixed(3)} | ${h2ConnectJson.check} |`,
      `| REST (POST /reserve) | ${h2Rest.rps.toFixed(0)} | ${(h2Rest.rps / ceiling).toFixed(3)} | ${h2Rest.check} |`,
    );
  }
  if (h2HalfOurs && h2HalfNoop) {
    const row = (name: string, l: Latencies): string => `| ${name} | ${l.rps.toFixed(0)} | ${l.p50Ms.toFixed(2)} | ${l.p99Ms.toFixed(2)} | ${l.p999Ms.toFixed(2)} | ${l.p99AllMs.toFixed(2)} |`;
    lines.push(
      "",
      `h2load, gRPC Reserve open loop at half its max (${h2Half}/s over ${CONNECTIONS} connections opened ${Math.ceil(CONNECTIONS / 10)} a millisecond, so that their 10 ms send timers are out of phase; percentiles from --log-file over the calls after the first second, while connections open and warm up):`,
      "| server | req/s | p50 ms | p99 ms | p99.9 ms | p99 ms with the first second |",
      "|---|---:|---:|---:|---:|---:|",
      row("ticket-queue", h2HalfOurs),
      row("no-op HTTP/2 responder (the floor of h2load and the shared cores)", h2HalfNoop),
    );
  }
  lines.push("", `Redis round trips per gRPC Reserve: ${commandsPerReserve.toFixed(3)} script calls (commandstats over the run: ${commandsDetail})`);
  console.log(lines.join("\n"));
}

