import { readFileSync } from "node:fs";
import { SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { Cluster, type Redis } from "ioredis";
import { callRedis } from "../redis/redis-errors.js";
import { luaConstants } from "./script-codes.js";

const tracer = trace.getTracer("ticket-queue");

/**
 * The Lua scripts, one per command, in src/lua. A file is named
 * `<command>-<number of keys>.lua`; its header documents KEYS, ARGV and replies.
 * A line `--- @include "name"` inlines src/lua/includes/name.lua, and
 * `--- @include "codes"` the constants of script-codes.ts.
 */
const scriptFiles = {
  reserve: "reserve-15.lua",
  status: "status-14.lua",
  cancel: "cancel-14.lua",
  confirm: "confirm-14.lua",
  expireHolds: "expire-holds-14.lua",
  releaseSweep: "release-sweep-14.lua",
  processQueue: "process-queue-14.lua",
  reset: "reset-14.lua",
  createEvent: "create-event-14.lua",
  updateEvent: "update-event-14.lua",
  getEvent: "get-event-14.lua",
  listSeats: "list-seats-14.lua",
  draw: "draw-14.lua",
  listDraw: "list-draw-14.lua",
  touch: "touch-14.lua",
  announce: "announce-14.lua",
  rateLimit: "rate-limit-1.lua",
} as const;

export type ScriptName = keyof typeof scriptFiles;

/** Runs a script by name: EVALSHA, falling back to EVAL when Redis lacks it. */
export type ScriptRunner = (name: ScriptName, keys: readonly string[], args: readonly (string | number | Buffer)[]) => Promise<unknown>;

const luaDir = new URL("../lua/", import.meta.url);

function numberOfKeys(file: string): number {
  const match = /-(\d+)\.lua$/.exec(file);
  if (!match?.[1]) throw new Error(`script file ${file} does not end in -<keys>.lua`);
  return Number(match[1]);
}

/** The script's source with its includes inlined (includes may include). */
export function scriptSource(file: string): string {
  return withIncludes(readFileSync(new URL(file, luaDir), "utf8"));
}

function withIncludes(source: string): string {
  return source.replace(/^--- @include "([\w-]+)"$/gm, (_line, name: string) =>
    name === "codes" ? luaConstants() : withIncludes(readFileSync(new URL(`includes/${name}.lua`, luaDir), "utf8")),
  );
}

/**
 * Defines every script on the client with ioredis `defineCommand` (which sends
 * EVALSHA and retries with EVAL after NOSCRIPT, e.g. when Redis restarted).
 */
export function loadScripts(redis: Redis): ScriptRunner {
  for (const [name, file] of Object.entries(scriptFiles)) {
    redis.defineCommand(commandName(name), { lua: scriptSource(file), numberOfKeys: numberOfKeys(file) });
  }
  const batch = writeBatcher(redis);
  return (name, keys, args) => {
    const command: unknown = Reflect.get(redis, commandName(name));
    if (typeof command !== "function") throw new Error(`script ${name} is not defined`);
    batch();
    const run = (): Promise<unknown> => callRedis(() => Promise.resolve(command.call(redis, ...keys, ...args)));
    // A child span per script inside a traced call (tracing off: no active span, nothing more is done).
    if (!trace.getActiveSpan()?.isRecording()) return run();
    return tracer.startActiveSpan(`EVALSHA ${name}`, { kind: SpanKind.CLIENT, attributes: { "db.system": "redis", "db.operation.name": "EVALSHA", "db.query.summary": `EVALSHA ${scriptFiles[name]}` } }, (span) =>
      run().then(
        (reply) => {
          span.end();
          return reply;
        },
        (err: unknown) => {
          span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
          span.end();
          throw err;
        },
      ),
    );
  };
}

function commandName(name: string): string {
  return `tq_${name}`;
}

/**
 * ioredis writes each command to its socket at once: a system call per command.
 * Corking the socket until this turn of the event loop has run its I/O callbacks
 * (setImmediate) sends the scripts of every call those callbacks brought in
 * in one write, without auto-pipelining's per-batch objects. Not process.nextTick:
 * node drains that queue after each callback from native code, and HTTP/2 calls
 * each stream's events from its own, so a nextTick uncork wrote one command per
 * write (20,051 writes for 20,000 Reserves under h2load; 180 with setImmediate).
 * On a Cluster every master's socket is corked the same way.
 */
function writeBatcher(redis: Redis): () => void {
  let corked: Socket[] = [];
  const uncork = (): void => {
    for (const socket of corked) socket.uncork();
    corked = [];
  };
  return () => {
    if (corked.length > 0) return;
    corked = socketsOf(redis);
    for (const socket of corked) socket.cork();
    if (corked.length > 0) setImmediate(uncork);
  };
}

type Socket = Redis["stream"];

// A connection not (yet) connected has no stream: ioredis refuses its commands itself.
function socketsOf(redis: Redis | Cluster): Socket[] {
  const connections = redis instanceof Cluster ? redis.nodes("master") : [redis];
  return connections.map((connection) => connection.stream as Socket | undefined).filter((socket) => socket !== undefined);
}
