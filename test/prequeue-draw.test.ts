import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { useTestStore } from "./helpers/store.js";
import { until } from "./helpers/wait.js";
import { ReservationStatus } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { commitmentOf, drawValueOf, finalSeedOf, newEntrySecret, placeOf } from "../src/queue/draw.js";
import { eventKeys } from "../src/queue/keys.js";
import { LAYOUT } from "../src/queue/script-codes.js";
import { type ReserveResult } from "../src/queue/queue-store.js";
import { toConnectError } from "../src/rpc/errors.js";


// The pre-queue and its draw, at the t.store (one Lua script a call), on a real Redis.
const { RESERVED, QUEUED, PREQUEUED, CANCELLED } = ReservationStatus;

const t = useTestStore();

const code = (err: unknown): Code => toConnectError(err).code;
const sleepUntil = async (at: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, at - Date.now())));
const settings = (capacity: number, opensAt: number, extra = {}) => ({ name: "t", capacity, holdSeconds: 0, opensAt, closesAt: 0, ...extra });

/** Runs the draw to its end, `chunk` entrants a call (as the sweepers do). */
async function drawAll(eventId: string, chunk: number): Promise<{ calls: number; promoted: string[] }> {
  for (let calls = 1; ; calls++) {
    const r = await t.store.draw(eventId, chunk);
    if (r.done) return { calls, promoted: r.promoted };
    if (r.drawn === 0) throw new Error("the draw made no progress");
  }
}

describe("pre-queue", () => {
  it("makes entry secrets of 128 bits, never the same twice (across refills of the pool they come from)", () => {
    const secrets = Array.from({ length: 1000 }, () => newEntrySecret());
    expect(secrets.every((s) => /^[0-9a-f]{32}$/.test(s))).toBe(true);
    expect(new Set(secrets).size).toBe(secrets.length);
  });

  it("takes early arrivals as PREQUEUED, draws them at the opening in the published order, ahead of later joins", async () => {
    const opensAt = Date.now() + 2500;
    await t.store.createEvent("ktx", settings(3, opensAt));
    const before = await t.store.getEvent("ktx");
    expect(before.draw).toMatchObject({ state: "open", seed: "", chainHead: "", entrants: 0 });
    expect(before.draw.commitment).toMatch(/^[0-9a-f]{64}$/);

    const users = Array.from({ length: 40 }, (_, i) => `early-${i}`);
    const joined = new Map<string, ReserveResult>();
    for (const u of users) joined.set(u, await t.store.reserve("ktx", u));
    for (const r of joined.values()) {
      expect(r).toMatchObject({ status: PREQUEUED, position: 0, drawnPlace: 0, opensAt, alreadyKnown: false });
      expect(r.entrySecret).toMatch(/^[0-9a-f]{32}$/);
    }
    // A repeat is the same entry; a cancel leaves the pre-queue.
    expect(await t.store.reserve("ktx", "early-0")).toMatchObject({ status: PREQUEUED, alreadyKnown: true, seq: joined.get("early-0")?.seq, entrySecret: joined.get("early-0")?.entrySecret });
    expect((await t.store.cancel("ktx", "early-1", joined.get("early-1")?.seq)).status).toBe(CANCELLED);
    // Nobody is seated before the draw, whatever the operator does.
    expect(await t.store.processQueue("ktx")).toEqual([]);
    expect((await t.store.status("ktx", "early-2")).status).toBe(PREQUEUED);

    await sleepUntil(opensAt + 50);
    const late = await t.store.reserve("ktx", "late-1");
    expect(late).toMatchObject({ status: QUEUED, position: 40, entrySecret: "" });

    // Drawn 7 a call; in between, entrants stay PREQUEUED and the late joiner's place holds.
    const first = await t.store.draw("ktx", 7);
    expect(first).toMatchObject({ drawn: 7, done: false });
    expect((await t.store.status("ktx", "early-3")).status).toBe(PREQUEUED);
    expect((await t.store.status("ktx", "late-1")).position).toBe(40);
    // An entrant leaving mid-draw leaves the published list too.
    expect((await t.store.cancel("ktx", "early-4", undefined)).status).toBe(CANCELLED);
    expect((await t.store.status("ktx", "late-1")).position).toBe(39);
    const { promoted } = await drawAll("ktx", 7);
    expect(promoted).toHaveLength(3);

    const e = await t.store.getEvent("ktx");
    expect(e.draw).toMatchObject({ state: "done", entrants: 40, left: 2, drawn: 38 });
    expect(commitmentOf(e.draw.seed)).toBe(before.draw.commitment);
    expect(finalSeedOf(e.draw.seed, e.draw.chainHead, "")).toBe(e.draw.finalSeed);
    const values = Array.from(await t.store.drawn.get("ktx", e.draw.finalSeed));
    expect(values).toHaveLength(38);
    expect(values).toEqual([...values].sort((a, b) => a - b));

    // The line is the entrants ordered by their recomputed values: seats first, then the waiting.
    const inLine = users.filter((u) => u !== "early-1" && u !== "early-4");
    const byValue = inLine
      .map((u) => ({ u, value: drawValueOf(e.draw.finalSeed, joined.get(u)?.entrySecret ?? "") }))
      .sort((a, b) => a.value - b.value);
    expect(byValue.map((x) => x.value)).toEqual(values);
    expect(new Set(promoted)).toEqual(new Set(byValue.slice(0, 3).map((x) => x.u)));
    for (const [i, { u, value }] of byValue.entries()) {
      const s = await t.store.status("ktx", u);
      expect(placeOf(values, value)).toBe(i + 1);
      if (i < 3) expect(s).toMatchObject({ status: RESERVED, promoted: true, seq: joined.get(u)?.seq });
      else expect(s).toMatchObject({ status: QUEUED, position: i + 1 - 3, drawnPlace: i + 1, seq: joined.get(u)?.seq });
    }
    expect((await t.store.status("ktx", "late-1")).position).toBe(38 - 3 + 1);
    // The draw is over: new joins queue behind, in order.
    expect((await t.store.reserve("ktx", "late-2")).position).toBe(38 - 3 + 2);

    // Seats freed go down the drawn line; a ticket's seq still names the entry.
    const head = byValue[3]?.u ?? "";
    await t.store.cancel("ktx", byValue[0]?.u ?? "", undefined);
    expect(await t.store.status("ktx", head)).toMatchObject({ status: RESERVED, seq: joined.get(head)?.seq });
    expect(await t.redis.hlen(eventKeys(t.store.options.prefix, "ktx")[8] ?? "")).toBe(38 - 4);
  });

  it("draws once however many callers race, in chunks that never hand out a place twice", async () => {
    const opensAt = Date.now() + 3000;
    await t.store.createEvent("race", settings(1000, opensAt));
    const joined = await Promise.all(Array.from({ length: 500 }, (_, i) => t.store.reserve("race", `u${i}`)));
    // (all before the opening, even on a busy machine: otherwise some are later joins, rightly not drawn)
    expect(joined.every((r) => r.status === PREQUEUED)).toBe(true);
    await sleepUntil(opensAt + 20);
    const results = await Promise.all(Array.from({ length: 8 }, () => drawAll("race", 37).catch(() => ({ calls: 0, promoted: [] as string[] }))));
    const promoted = results.flatMap((r) => r.promoted);
    expect(promoted).toHaveLength(500);
    expect(new Set(promoted).size).toBe(500);
    expect((await t.store.getEvent("race")).draw).toMatchObject({ state: "done", drawn: 500 });
    expect(await t.store.draw("race", 37)).toMatchObject({ drawn: 0, done: false });
  });

  it("seats at most 2,500 in the call that ends the draw (each call stays short); the sweeps seat the rest", async () => {
    const opensAt = Date.now() + 4000;
    await t.store.createEvent("big", settings(6000, opensAt));
    for (let i = 0; i < 6000; i += 500) await Promise.all(Array.from({ length: 500 }, (_, j) => t.store.reserve("big", `u${i + j}`)));
    await sleepUntil(opensAt + 20);
    const { promoted } = await drawAll("big", 2500);
    expect(promoted).toHaveLength(2500);
    expect((await t.store.expireHolds("big")).promoted).toHaveLength(2500);
    expect((await t.store.expireHolds("big")).promoted).toHaveLength(1000);
    expect(await t.store.getEvent("big")).toMatchObject({ seats: 6000, waiting: 0 });
  });

  it("marks an event whose Reset starts a pre-queue with the current layout (older workers then refuse it)", async () => {
    await t.store.createEvent("old", settings(2, Date.now() + 60_000));
    const meta = eventKeys(t.store.options.prefix, "old")[0] ?? "";
    await t.redis.hset(meta, "layout", 2);
    await t.store.reset("old");
    expect(Number(await t.redis.hget(meta, "layout"))).toBe(LAYOUT);
  });

  it("refuses Reserve before prequeue_opens_at, and waits for an announced beacon before drawing", async () => {
    const opensAt = Date.now() + 800;
    const prequeueOpensAt = Date.now() + 300;
    await t.store.createEvent("b", settings(5, opensAt, { prequeueOpensAt, drawBeaconSource: "drand quicknet round 1" }));
    await expect(t.store.reserve("b", "too-early")).rejects.toSatisfy((err) => code(err) === Code.FailedPrecondition);
    await expect(t.store.updateEvent("b", { drawBeacon: "ab" })).rejects.toSatisfy((err) => code(err) === Code.FailedPrecondition);
    await sleepUntil(prequeueOpensAt + 20);
    expect((await t.store.reserve("b", "a")).status).toBe(PREQUEUED);
    await sleepUntil(opensAt + 20);
    expect(await t.store.draw("b", 10)).toMatchObject({ drawn: 0, done: false });
    expect((await t.store.getEvent("b")).draw.state).toBe("open");
    await expect(t.store.updateEvent("b", { opensAt: Date.now() + 60_000 })).rejects.toSatisfy((err) => code(err) === Code.FailedPrecondition);
    // Setting the beacon moves nobody: watchers are not told to re-read (a million of them would, at the opening).
    const listener = t.redis.duplicate();
    await listener.connect();
    const heard: string[] = [];
    for (const kind of ["message", "smessage"]) listener.on(kind, (_channel: string, text: string) => heard.push(text));
    await listener.subscribe(t.store.channel("b"));
    await listener.ssubscribe(t.store.channel("b"));
    await t.store.updateEvent("b", { drawBeacon: "00ff" });
    await new Promise((r) => setTimeout(r, 200));
    expect(heard).toEqual([]);
    await expect(t.store.updateEvent("b", { drawBeacon: "0100" })).rejects.toSatisfy((err) => code(err) === Code.FailedPrecondition);
    expect(await t.store.draw("b", 10)).toMatchObject({ drawn: 1, done: true, promoted: ["a"] });
    // The listener hears real changes: the draw's.
    expect(await until(() => heard.length > 0)).toBe(true);
    listener.disconnect();
    const d = (await t.store.getEvent("b")).draw;
    expect(finalSeedOf(d.seed, d.chainHead, "00ff")).toBe(d.finalSeed);
  });

  it("keeps the pre-queue and commitment when opens_at moves before the draw; clearing it draws at once", async () => {
    await t.store.createEvent("m", settings(2, Date.now() + 60_000));
    const { commitment } = (await t.store.getEvent("m")).draw;
    await t.store.reserve("m", "a");
    await t.store.updateEvent("m", { opensAt: Date.now() + 120_000 });
    expect((await t.store.getEvent("m")).draw).toMatchObject({ state: "open", commitment, entrants: 1 });
    expect((await t.store.status("m", "a")).status).toBe(PREQUEUED);
    await t.store.updateEvent("m", { opensAt: 0 });
    expect(await t.store.draw("m", 10)).toMatchObject({ done: true, promoted: ["a"] });
  });

  it("draws while paused but seats nobody until the pause ends", async () => {
    const opensAt = Date.now() + 1500;
    await t.store.createEvent("p", settings(2, opensAt));
    await t.store.reserve("p", "a");
    await t.store.reserve("p", "b");
    await t.store.updateEvent("p", { paused: true });
    await sleepUntil(opensAt + 20);
    expect(await t.store.draw("p", 10)).toMatchObject({ done: true, promoted: [] });
    expect((await t.store.status("p", "a")).status).toBe(QUEUED);
    expect((await t.store.updateEvent("p", { paused: false })).sort()).toEqual(["a", "b"]);
  });

  it("Reset clears the pre-queue and starts a new commitment; an event opening at once has none", async () => {
    await t.store.createEvent("r", settings(2, Date.now() + 60_000));
    const { commitment } = (await t.store.getEvent("r")).draw;
    await t.store.reserve("r", "a");
    await t.store.reset("r");
    const after = await t.store.getEvent("r");
    expect(after.draw).toMatchObject({ state: "open", entrants: 0 });
    expect(after.draw.commitment).not.toBe(commitment);
    expect((await t.store.status("r", "a")).status).toBe(ReservationStatus.NOT_FOUND);
    await t.store.createEvent("now", settings(2, 0));
    expect((await t.store.getEvent("now")).draw.state).toBe("none");
    expect((await t.store.reserve("now", "x")).status).toBe(RESERVED);
  });
});
