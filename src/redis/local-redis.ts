import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync } from "node:fs";
import { connect } from "node:net";
import { resolve } from "node:path";

export class RedisNotInstalledError extends Error {
  override readonly name = "RedisNotInstalledError";
  constructor(port: number) {
    super(
      [
        `REDIS_URL is not set, nothing answers on 127.0.0.1:${port}, and redis-server is not installed.`,
        "Get Redis one of these ways, then run npm start again:",
        "  Debian/Ubuntu: sudo apt-get install redis-server",
        "  macOS:         brew install redis",
        "  Docker:        docker compose up",
        "or point REDIS_URL at a running Redis (redis://host:6379).",
      ].join("\n"),
    );
  }
}

/** Whether something accepts TCP connections on host:port within `timeoutMs`. */
export function isListening(host: string, port: number, timeoutMs = 300): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect({ host, port });
    const finish = (ok: boolean): void => {
      socket.destroy();
      done(ok);
    };
    socket.setTimeout(timeoutMs, () => finish(false));
    socket.once("connect", () => finish(true));
    socket.once("error", () => finish(false));
  });
}

export interface LocalRedis {
  url: string;
  stop(): Promise<void>;
}

/**
 * Starts a redis-server child for development: loopback only, data and AOF under
 * `dataDir`. Rejects with RedisNotInstalledError when redis-server is not on PATH.
 */
export async function startLocalRedis(port: number, dataDir: string): Promise<LocalRedis> {
  const dir = resolve(dataDir);
  mkdirSync(dir, { recursive: true });
  const child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--appendonly", "yes", "--save", ""], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  await new Promise<void>((ok, fail) => {
    child.once("error", (err: NodeJS.ErrnoException) => fail(err.code === "ENOENT" ? new RedisNotInstalledError(port) : err));
    child.once("exit", (code) => fail(new Error(`redis-server exited with code ${String(code)} while starting`)));
    const poll = async (): Promise<void> => {
      for (let i = 0; i < 100; i++) {
        if (await isListening("127.0.0.1", port)) return ok();
        await new Promise((r) => setTimeout(r, 50));
      }
      fail(new Error("redis-server did not start listening within 5 s"));
    };
    child.once("spawn", () => void poll());
  });
  child.removeAllListeners("exit");
  return { url: `redis://127.0.0.1:${port}`, stop: () => stopChild(child) };
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return Promise.resolve();
  return new Promise((done) => {
    child.once("exit", () => done());
    child.kill("SIGTERM");
  });
}
