import { stdSerializers } from "pino";
import { describe, expect, it } from "vitest";
import { useTestStore } from "./helpers/store.js";
import { loggable } from "../src/rpc/errors.js";

// ioredis attaches a failed command, arguments and all, to its ReplyError: a
// script's arguments can be a fresh draw seed or an entrant's secret, which
// must never reach the log.
const t = useTestStore();

describe("errors as logged", () => {
  it("carry the message but not the command's arguments", async () => {
    await t.redis.set("a-string", "x");
    const err = await t.redis.hset("a-string", "field", "s3cret-seed").then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(JSON.stringify(stdSerializers.err(err as Error))).toContain("s3cret-seed"); // what pino would have logged
    const logged = JSON.stringify(stdSerializers.err(loggable(err) as Error));
    expect(logged).not.toContain("s3cret-seed");
    expect(logged).toContain("WRONGTYPE");
  });
});
