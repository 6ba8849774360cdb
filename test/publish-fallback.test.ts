import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StatusChange, TicketQueueService } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { startTestRedis, type TestRedis } from "./helpers/redis-server.js";
import { startTestService, TEST_ADMIN_TOKEN, type TestService } from "./helpers/service.js";

// A Redis without sharded pub/sub (before 7.0, or one whose operator turned it
// off): the scripts fall back to PUBLISH and the hub hears them on its plain
// subscription. Here the sharded commands are renamed away on a 7.0 server.

let redis: TestRedis;
let svc: TestService;
const admin = { headers: { "x-token": TEST_ADMIN_TOKEN } };

beforeAll(async () => {
  redis = await startTestRedis(["--rename-command", "SPUBLISH", "", "--rename-command", "SSUBSCRIBE", "", "--rename-command", "SUNSUBSCRIBE", ""]);
  // (its own standalone Redis, on the cluster run too: the cluster has sharded pub/sub)
  svc = await startTestService(redis.url, { clusterNodes: [] });
});
afterAll(async () => {
  await svc?.close();
  await redis?.dispose();
});

describe("a Redis without SPUBLISH and SSUBSCRIBE", () => {
  it("really has neither", async () => {
    await expect(svc.redis.call("SPUBLISH", "x", "y")).rejects.toThrow(/unknown command/i);
    await expect(svc.redis.eval("return redis.call('SPUBLISH', 'x', 'y')", 0)).rejects.toThrow(/Unknown Redis command/);
  });

  it("watchers are told every change, through PUBLISH", async () => {
    const client = createClient(TicketQueueService, createGrpcTransport({ baseUrl: svc.baseUrl }));
    await client.createEvent({ eventId: "plain", capacity: 1 }, admin);
    const seated = await client.reserve({ eventId: "plain", userId: "seated" });
    await client.reserve({ eventId: "plain", userId: "ahead" });
    const me = await client.reserve({ eventId: "plain", userId: "me" });
    const stream = client.watchStatus({ eventId: "plain", userId: "me", ticket: me.ticket })[Symbol.asyncIterator]();
    expect((await stream.next()).value).toMatchObject({ change: StatusChange.INITIAL, position: 2 });
    // The hub listens on the plain channel only: the sharded subscription was refused as unknown.
    const [channel = "", subscribers = 0] = (await svc.redis.call("PUBSUB", "NUMSUB", svc.store.channel("plain"))) as [string, number];
    expect([channel, subscribers]).toEqual([svc.store.channel("plain"), 1]);
    await client.cancel({ eventId: "plain", userId: "seated", ticket: seated.ticket });
    expect((await stream.next()).value).toMatchObject({ change: StatusChange.POSITION, position: 1 });
    await client.adminCancel({ eventId: "plain", userId: "ahead" }, admin);
    expect((await stream.next()).value).toMatchObject({ change: StatusChange.PROMOTED, position: 0 });
    await stream.return?.();
  });
});
