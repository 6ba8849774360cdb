import { readFileSync } from "node:fs";
import type { Redis } from "ioredis";
import { callRedis } from "../redis/redis-errors.js";

/**
 * The Lua scripts, one per command, in src/lua. A file is named
 * `<command>-<number of keys>.lua`; its header documents KEYS, ARGV and replies.
 */
const scriptFiles = {
  reserve: "reserve-3.lua",
  status: "status-3.lua",
  processQueue: "process-queue-3.lua",
  reset: "reset-3.lua",
} as const;

export type ScriptName = keyof typeof scriptFiles;

/** Runs a script by name: EVALSHA, falling back to EVAL when Redis lacks it. */
export type ScriptRunner = (name: ScriptName, keys: readonly string[], args: readonly (string | number)[]) => Promise<unknown>;

const luaDir = new URL("../lua/", import.meta.url);

function numberOfKeys(file: string): number {
  const match = /-(\d+)\.lua$/.exec(file);
  if (!match?.[1]) throw new Error(`script file ${file} does not end in -<keys>.lua`);
  return Number(match[1]);
}

/**
 * Defines every script on the client with ioredis `defineCommand` (which sends
 * EVALSHA and retries with EVAL after NOSCRIPT, e.g. when Redis restarted).
 */
export function loadScripts(redis: Redis): ScriptRunner {
  for (const [name, file] of Object.entries(scriptFiles)) {
    redis.defineCommand(commandName(name), {
      lua: readFileSync(new URL(file, luaDir), "utf8"),
      numberOfKeys: numberOfKeys(file),
    });
  }
  return (name, keys, args) => {
    const command: unknown = Reflect.get(redis, commandName(name));
    if (typeof command !== "function") throw new Error(`script ${name} is not defined`);
    return callRedis(() => Promise.resolve(command.call(redis, ...keys, ...args)));
  };
}

function commandName(name: string): string {
  return `tq_${name}`;
}
