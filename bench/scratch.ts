import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, waitListening } from "./ports.js";

/** What a bench starts and where it writes: the processes are killed and the directory removed when the bench exits. */
export interface Scratch {
  readonly children: ChildProcess[];
  readonly dir: string;
}

export function benchScratch(name: string): Scratch {
  const scratch = { children: [] as ChildProcess[], dir: mkdtempSync(join(tmpdir(), `tq-${name}-`)) };
  process.on("exit", () => {
    scratch.children.forEach((c) => c.kill("SIGKILL"));
    rmSync(scratch.dir, { recursive: true, force: true });
  });
  return scratch;
}

/** The bench's own redis-server (no persistence) on a free port: its port, once it listens. */
export async function startOwnRedis(scratch: Scratch): Promise<number> {
  return (await startOwnRedisProcess(scratch)).port;
}

/** The same, with its process (a bench that pauses Redis signals it). */
export async function startOwnRedisProcess(scratch: Scratch): Promise<{ port: number; child: ChildProcess }> {
  const port = await freePort();
  const child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", scratch.dir], { stdio: "ignore" });
  scratch.children.push(child);
  await waitListening(port);
  return { port, child };
}

/** The service's environment for a bench: on 127.0.0.1:`port` against the bench's Redis, quiet, unthrottled, one worker unless `more` says otherwise. */
export function serviceEnv(port: number, redisPort: number, adminToken: string, more: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    PORT: String(port),
    HOST: "127.0.0.1",
    REDIS_URL: `redis://127.0.0.1:${redisPort}`,
    WORKERS: "1",
    ADMIN_TOKEN: adminToken,
    LOG_LEVEL: "warn",
    RATE_LIMIT_PER_MINUTE: "0",
    REDIS_COMMAND_TIMEOUT_MS: "10000",
    ...more,
  };
}
