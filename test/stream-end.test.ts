import { describe, expect, it } from "vitest";
import { passThrough, type StreamEnd } from "../src/rpc/stream-end.js";

/** A stream that records whether its finally block ran, as a watcher's cleanup does. */
function source(values: number[], failAfter?: number): { messages: AsyncIterable<number>; cleaned: () => boolean } {
  let cleaned = false;
  const messages = (async function* () {
    try {
      for (const [i, v] of values.entries()) {
        if (i === failAfter) throw new Error("boom");
        yield v;
      }
    } finally {
      cleaned = true;
    }
  })();
  return { messages, cleaned: () => cleaned };
}

describe("passThrough (the interceptors' stream wrapper)", () => {
  it("passes every message, mapped, and ends once with done", async () => {
    const ends: StreamEnd[] = [];
    const { messages, cleaned } = source([1, 2, 3]);
    const out: number[] = [];
    for await (const v of passThrough(messages, { map: (m) => m * 10, onEnd: (e) => ends.push(e) })) out.push(v);
    expect(out).toEqual([10, 20, 30]);
    expect(ends).toEqual([{ how: "done" }]);
    expect(cleaned()).toBe(true);
  });

  it("maps an error on its way out and ends once with it", async () => {
    const ends: StreamEnd[] = [];
    const { messages } = source([1, 2, 3], 1);
    const mapped = new Error("mapped");
    const out: number[] = [];
    await expect(
      (async () => {
        for await (const v of passThrough(messages, { mapError: () => mapped, onEnd: (e) => ends.push(e) })) out.push(v);
      })(),
    ).rejects.toBe(mapped);
    expect(out).toEqual([1]);
    expect(ends).toEqual([{ how: "failed", error: mapped }]);
  });

  it("a reader that stops early ends the inner stream (its finally runs) and ends once as returned, through every layer", async () => {
    const ends: string[] = [];
    const { messages, cleaned } = source([1, 2, 3]);
    let layered: AsyncIterable<number> = messages;
    for (const name of ["a", "b", "c"]) layered = passThrough(layered, { onEnd: (e) => ends.push(`${name}:${e.how}`) });
    for await (const v of layered) if (v === 2) break;
    expect(cleaned()).toBe(true);
    expect(ends.sort()).toEqual(["a:returned", "b:returned", "c:returned"]);
  });

  it("an error from the inner stream's cleanup reaches the reader mapped", async () => {
    const inner: AsyncIterable<number> = {
      [Symbol.asyncIterator]: () => ({
        next: () => Promise.resolve({ done: false, value: 1 }),
        return: () => Promise.reject(new Error("cleanup failed")),
      }),
    };
    const ends: StreamEnd[] = [];
    const reading = (async () => {
      for await (const v of passThrough(inner, { mapError: (err) => new Error(`mapped: ${String(err)}`), onEnd: (e) => ends.push(e) })) if (v === 1) break;
    })();
    await expect(reading).rejects.toThrow("mapped: Error: cleanup failed");
    expect(ends).toHaveLength(1);
    expect(ends[0]?.how).toBe("failed");
  });
});
