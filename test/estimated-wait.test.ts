import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { describe, expect, it } from "vitest";
import { TicketQueueService } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { eventKeys } from "../src/queue/keys.js";
import { estimateWaitMs } from "../src/queue/wait-estimate.js";
import { startTestService, TEST_ADMIN_TOKEN, useTestService } from "./helpers/service.js";

describe("estimateWaitMs", () => {
  const est = (position: number, promotedInWindow: number, windowMs: number, admitPerMinute = 0) => estimateWaitMs({ position, promotedInWindow, windowMs, admitPerMinute });
  it("is position / observed rate, and unknown while the data is thin", () => {
    expect(est(10, 20, 60_000)).toBe(30_000); // 20 per minute: 10 take 30 s
    expect(est(10, 4, 60_000)).toBeUndefined(); // too few promotions
    expect(est(10, 20, 10_000)).toBeUndefined(); // too short a window
    expect(est(0, 20, 60_000)).toBeUndefined(); // not waiting
  });
  it("is never shorter than a paced event's pace allows", () => {
    expect(est(10, 0, 0, 61)).toBe(10_000); // 61 a minute (60 steady): 10 take 10 s, known before any promotion
    expect(est(10, 200, 60_000, 61)).toBe(10_000); // seats free up faster than the pace: the pace decides
    expect(est(10, 20, 60_000, 610)).toBe(30_000); // seats free up slower than the pace: they decide
  });
});

describe("GetStatus estimated_wait", () => {
  const env = useTestService();

  it("comes from the promotions of the last five minutes, and is absent without them", async () => {
    const client = createClient(TicketQueueService, createGrpcTransport({ baseUrl: env.svc.baseUrl }));
    await client.createEvent({ eventId: "eta", capacity: 1 }, { headers: { "x-token": TEST_ADMIN_TOKEN } });
    for (const userId of ["a", "b", "c", "d"]) await client.reserve({ eventId: "eta", userId });
    expect((await client.getStatus({ eventId: "eta", userId: "d" })).estimatedWait).toBeUndefined();

    // 30 promotions spread over the last minute's six 10-second buckets (the current one excluded).
    const [, , , , , rate = ""] = eventKeys(env.svc.prefix, "eta");
    const [seconds] = await env.svc.redis.time();
    const bucket = Math.floor((Number(seconds) * 1000) / 10_000);
    for (let b = bucket - 6; b < bucket; b++) await env.svc.redis.hset(rate, b, 5);
    const status = await client.getStatus({ eventId: "eta", userId: "d" });
    // Position 3 at 30 per 60 s: 6 s.
    expect(status.position).toBe(3);
    expect(Number(status.estimatedWait?.seconds)).toBe(6);
    expect((await client.getStatus({ eventId: "eta", userId: "a" })).estimatedWait).toBeUndefined(); // seated
  });

  it("ends open watch streams with Unavailable when the server stops", async () => {
    const own = await startTestService(env.redis.url);
    const client = createClient(TicketQueueService, createGrpcTransport({ baseUrl: own.baseUrl }));
    const ticket = (await client.reserve({ userId: "stayer" })).ticket;
    const stream = client.watchStatus({ userId: "stayer", ticket })[Symbol.asyncIterator]();
    await stream.next();
    const ended = stream.next().then(
      () => "ended without error",
      (err: unknown) => String(err),
    );
    await own.close();
    expect(await ended).toMatch(/unavailable.*shutting down/);
  });

  it("ends an open SSE watch with an error event carrying Connect's error JSON when the server stops", async () => {
    const own = await startTestService(env.redis.url);
    const client = createClient(TicketQueueService, createGrpcTransport({ baseUrl: own.baseUrl }));
    const ticket = (await client.reserve({ userId: "sse-stayer" })).ticket;
    const res = await fetch(`${own.baseUrl}/v1/events/default/watch?user_id=sse-stayer&ticket=${ticket}`);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const reader = res.body?.getReader();
    let text = "";
    const read = async (until: RegExp): Promise<void> => {
      while (!until.test(text)) {
        const chunk = await reader?.read();
        if (!chunk || chunk.done) return;
        text += new TextDecoder().decode(chunk.value);
      }
    };
    await read(/event: status/);
    expect(text).toMatch(/^id: \d+\nevent: status\ndata: \{.*"status":"RESERVATION_STATUS_RESERVED"/);
    const closed = own.close();
    await read(/event: error\ndata: .*\n\n/);
    await closed;
    const error = JSON.parse(/event: error\ndata: (.*)\n\n/.exec(text)?.[1] ?? "{}") as { code?: string; message?: string };
    expect(error).toMatchObject({ code: "unavailable" });
    expect(error.message).toMatch(/shutting down/);
  });
});
