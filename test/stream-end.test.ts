import { describe, expect, it } from "vitest";
import { deferred, passThrough, writeStream, type StreamEnd } from "../src/rpc/stream-end.js";
import { isPushStream, type PushStream, type StreamSink } from "../src/watch/push-stream.js";

/** writeStream as a promise: resolves when the stream ends or `each` stops it (false), rejects when it fails or `each` throws. */
function forEachMessage<T>(messages: AsyncIterable<T>, each: (message: T) => boolean): Promise<void> {
  return new Promise<void>((resolve, reject) => writeStream(messages, { write: each, close: (end) => (end.how === "failed" ? reject(end.error) : resolve()) }));
}

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

/** A stream that pushes what the test sends it, and records whether it was stopped. */
function pushed(): { messages: PushStream<number>; send: (v: number) => void; end: () => void; fail: (err: unknown) => void; stopped: () => boolean } {
  let sink: StreamSink<number> | undefined;
  let stopped = false;
  const messages: PushStream<number> = {
    // (read only to be ended)
    [Symbol.asyncIterator]: () => ({
      next: () => Promise.reject(new Error("read: this test pushes")),
      return: () => {
        stopped = true;
        return Promise.resolve({ done: true, value: undefined });
      },
    }),
    push(s) {
      sink = s;
    },
    stop() {
      stopped = true;
    },
  };
  return { messages, send: (v) => sink?.message(v), end: () => sink?.end(), fail: (err) => sink?.fail(err), stopped: () => stopped };
}

describe("pushed streams (the watch streams' fast paths)", () => {
  it("pass through every layer pushed: mapped messages, then one end", async () => {
    const ends: string[] = [];
    const source = pushed();
    let layered: AsyncIterable<number> = source.messages;
    for (const name of ["a", "b"]) layered = passThrough(layered, { map: (m) => m + 1, onEnd: (e) => ends.push(`${name}:${e.how}`) });
    expect(isPushStream(layered)).toBe(true);
    const out: number[] = [];
    const done = forEachMessage(layered, (v) => out.push(v) > 0);
    source.send(1);
    source.send(2);
    source.end();
    await done;
    expect(out).toEqual([3, 4]);
    expect(ends).toEqual(["a:done", "b:done"]);
  });

  it("an error is mapped on its way out and rejects the writer; nothing after it is passed", async () => {
    const ends: StreamEnd[] = [];
    const source = pushed();
    const mapped = new Error("mapped");
    const out: number[] = [];
    const done = forEachMessage(
      passThrough(source.messages, { mapError: () => mapped, onEnd: (e) => ends.push(e) }),
      (v) => out.push(v) > 0,
    );
    source.send(1);
    source.fail(new Error("boom"));
    source.send(2);
    await expect(done).rejects.toBe(mapped);
    expect(out).toEqual([1]);
    expect(ends).toEqual([{ how: "failed", error: mapped }]);
  });

  it("layers stacked before it is pushed or read act as nested layers: maps in order, each onEnd sees the error as the layers under it mapped it", async () => {
    for (const how of ["pushed", "read"] as const) {
      const ends: string[] = [];
      const source = pushed();
      // Read: a stream that can push, read instead (its layers are stacked the same way).
      const readable: PushStream<number> = {
        ...source.messages,
        [Symbol.asyncIterator]: async function* () {
          yield 1;
          throw new Error("boom");
        },
      };
      expect(isPushStream(readable)).toBe(true);
      let layered: AsyncIterable<string> = (how === "pushed" ? source.messages : readable) as unknown as AsyncIterable<string>;
      for (const name of ["a", "b", "c"]) {
        layered = passThrough(layered, {
          map: (m) => `${name}(${m})`,
          mapError: (err) => new Error(`${name}(${(err as Error).message})`),
          onEnd: (e) => ends.push(`${name}:${e.how}:${e.how === "failed" ? (e.error as Error).message : ""}`),
        });
      }
      const out: string[] = [];
      const done =
        how === "pushed"
          ? forEachMessage(layered, (v) => out.push(v) > 0)
          : (async () => {
              for await (const v of layered) out.push(v);
            })();
      source.send(1);
      source.fail(new Error("boom"));
      await expect(done, how).rejects.toThrow("c(b(a(boom)))");
      expect(out, how).toEqual(["c(b(a(1)))"]);
      expect(ends, how).toEqual(["a:failed:a(boom)", "b:failed:b(a(boom))", "c:failed:c(b(a(boom)))"]);
    }
  });

  it("a writer that stops (false) or throws stops the source, and every layer ends once as returned", async () => {
    for (const stopWith of ["false", "throw"] as const) {
      const ends: string[] = [];
      const source = pushed();
      let layered: AsyncIterable<number> = source.messages;
      for (const name of ["a", "b", "c"]) layered = passThrough(layered, { onEnd: (e) => ends.push(`${name}:${e.how}`) });
      const done = forEachMessage(layered, (v) => {
        if (v < 2) return true;
        if (stopWith === "throw") throw new Error("cannot write");
        return false;
      });
      source.send(1);
      source.send(2);
      source.send(3);
      source.end();
      if (stopWith === "throw") await expect(done).rejects.toThrow("cannot write");
      else await done;
      expect(source.stopped()).toBe(true);
      expect(ends.sort()).toEqual(["a:returned", "b:returned", "c:returned"]);
    }
  });

  it("writeStream closes its writer once, with how the stream ended, pushed or read", async () => {
    const boom = new Error("boom");
    const cases = [
      { name: "ended", stopAt: undefined, throwAt: undefined, failAt: undefined, expected: "done" },
      { name: "writer said false", stopAt: 2, throwAt: undefined, failAt: undefined, expected: "returned" },
      { name: "writer threw", stopAt: undefined, throwAt: 2, failAt: undefined, expected: "failed" },
      { name: "stream failed", stopAt: undefined, throwAt: undefined, failAt: 2, expected: "failed" },
    ];
    for (const c of cases) {
      for (const kind of ["pushed", "read"] as const) {
        const closes: StreamEnd[] = [];
        const written: number[] = [];
        const writer = {
          write: (v: number): boolean => {
            if (v === c.throwAt) throw boom;
            written.push(v);
            return v !== c.stopAt;
          },
          close: (end: StreamEnd): void => void closes.push(end),
        };
        if (kind === "pushed") {
          const stream = pushed();
          writeStream(stream.messages, writer);
          for (const v of [1, 2, 3]) {
            if (v === c.failAt) stream.fail(boom);
            else stream.send(v);
          }
          // Told nothing more once over.
          stream.end();
          stream.fail(boom);
          if (c.stopAt !== undefined || c.throwAt !== undefined) expect(stream.stopped(), `${c.name}, ${kind}: the stream is stopped`).toBe(true);
        } else {
          writeStream(source([1, 2, 3], c.failAt === undefined ? undefined : c.failAt - 1).messages, writer);
          await new Promise((r) => setTimeout(r, 10));
        }
        expect(closes.map((e) => e.how), `${c.name}, ${kind}`).toEqual([c.expected]);
        expect(written, `${c.name}, ${kind}`).toEqual(c.stopAt === 2 || c.throwAt === 2 || c.failAt === 2 ? (c.stopAt === 2 ? [1, 2] : [1]) : [1, 2, 3]);
      }
    }
  });

  it("deferred: opened on first use; its opening error is the stream's, pushed or read", async () => {
    let opened = 0;
    const failing = () => deferred<number>(() => Promise.reject(new Error(`refused ${++opened}`)));
    const stream = failing();
    expect(opened).toBe(0);
    await expect(forEachMessage(stream, () => true)).rejects.toThrow("refused 1");
    await expect(
      (async () => {
        for await (const _ of failing());
      })(),
    ).rejects.toThrow("refused 2");
  });

  it("deferred: a writer that leaves while it opens has what the opening took given back", async () => {
    const ends: StreamEnd[] = [];
    let finishOpening: () => void = () => undefined;
    const stream = deferred<number>(async () => {
      await new Promise<void>((r) => (finishOpening = r));
      return passThrough(pushed().messages, { onEnd: (e) => ends.push(e) });
    });
    stream.push({ message: () => undefined, end: () => undefined, fail: () => undefined });
    stream.stop();
    finishOpening();
    await new Promise((r) => setTimeout(r, 10));
    expect(ends).toEqual([{ how: "returned" }]);
  });

  it("deferred: a reader that returns before reading never opens it", async () => {
    let opened = 0;
    const stream = deferred(() => {
      opened++;
      return Promise.resolve(pushed().messages);
    });
    const it = stream[Symbol.asyncIterator]();
    expect(await it.return?.()).toEqual({ done: true, value: undefined });
    expect(await it.next()).toEqual({ done: true, value: undefined });
    expect(opened).toBe(0);
  });
});
