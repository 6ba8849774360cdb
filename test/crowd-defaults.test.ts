import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TicketQueueService } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { freePort, startTestRedis, type TestRedis } from "./helpers/redis-server.js";

// A crowd from one address (a carrier NAT, an office, the old load test's one
// machine) against the service with its default settings: nobody is turned away.

const MAIN = resolve("dist/src/main.js");
const ADMIN_TOKEN = "crowd-admin";
let redis: TestRedis;
let baseUrl: string;
let stop: () => Promise<void>;

beforeAll(async () => {
  redis = await startTestRedis();
  const port = await freePort();
  // Only what a default `npm start` needs: where Redis is, the port, and (to drive the admin calls) the token.
  const child = spawn(process.execPath, [MAIN], {
    env: { PATH: process.env["PATH"] ?? "", HOST: "127.0.0.1", PORT: String(port), REDIS_URL: redis.url, ADMIN_TOKEN, KEY_PREFIX: `crowd-${port}`, LOG_LEVEL: "warn" },
    stdio: "ignore",
  });
  const exited = new Promise((done) => child.once("exit", done));
  stop = async () => {
    child.kill("SIGTERM");
    await exited;
  };
  baseUrl = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200 && !(await fetch(`${baseUrl}/health`).then((r) => r.ok, () => false)); i++) await new Promise((r) => setTimeout(r, 50));
});
afterAll(async () => {
  await stop();
  await redis.dispose();
});

describe("a crowd from one address, default settings", () => {
  it("1,500 concurrent gRPC Reserves: every one answered, none RESOURCE_EXHAUSTED", async () => {
    const client = createClient(TicketQueueService, createGrpcTransport({ baseUrl }));
    await client.createEvent({ eventId: "crowd", name: "crowd", capacity: 100 }, { headers: { "x-token": ADMIN_TOKEN } });
    const outcomes = await Promise.all(
      Array.from({ length: 1500 }, (_, i) => client.reserve({ eventId: "crowd", userId: `one-host-${i}` }).then(() => "ok", (e: unknown) => Code[ConnectError.from(e).code])),
    );
    expect(outcomes.filter((o) => o !== "ok")).toEqual([]);
    expect((await client.getEvent({ eventId: "crowd" })).event?.counts?.waiting).toBe(1400);
  }, 60_000);

  it("the old Locust test (50 users, reserve 4, status 3, health 2, process_queue 1, reset 1) for 15 s: no failure", () => {
    const out = mkdtempSync(join(tmpdir(), "tq-locust-"));
    const run = spawnSync("locust", ["-f", "bench/locustfile.py", "--headless", "-u", "50", "-r", "50", "-t", "15s", "--host", baseUrl, "--csv", join(out, "run"), "--only-summary"], {
      env: { ...process.env, ADMIN_TOKEN },
      encoding: "utf8",
      timeout: 60_000,
    });
    expect(run.error, "locust is not installed (apt-get install python3-locust)").toBeUndefined();
    const rows = readFileSync(join(out, "run_stats.csv"), "utf8").trim().split("\n").map((line) => line.split(","));
    const header = rows[0] ?? [];
    const column = (row: string[], name: string): number => Number(row[header.indexOf(name)]);
    const total = rows.find((row) => row[1] === "Aggregated") ?? [];
    const byName = Object.fromEntries(rows.slice(1).map((row) => [`${row[0]} ${row[1]}`, column(row, "Request Count")]));
    expect(column(total, "Request Count"), JSON.stringify(byName)).toBeGreaterThan(500);
    expect(byName["POST /reserve"]).toBeGreaterThan(100);
    expect(column(total, "Failure Count"), readFileSync(join(out, "run_failures.csv"), "utf8")).toBe(0);
    rmSync(out, { recursive: true, force: true });
  }, 90_000);
});
