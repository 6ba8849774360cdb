import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Redis, type Cluster } from "ioredis";
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

/** The port of the master holding an event's keys (in `service`'s key space). */
async function ownerOf(eventId: string, service: TestService = svc): Promise<number> {
  const [meta = ""] = eventKeys(service.prefix, eventId);
  for (const node of (service.redis as unknown as Cluster).nodes("master")) {
    // A node that does not own the slot answers MOVED.
    if ((await node.exists(meta).catch(() => 0)) === 1) return node.options.port ?? 0;
  }
  throw new Error(`no master holds ${meta}`);
}

describe("on a Redis Cluster", () => {
  it("serves many events, spread over the masters, each in one slot", async () => {
    for (const eventId of EVENTS) await client.createEvent({ eventId, capacity: 2 }, admin);
    const owners = new Set(await Promise.all(EVENTS.map((id) => ownerOf(id))));
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

  it("carries an event's changes only within the shard that owns it (sharded pub/sub), where PUBLISH reaches every node", async () => {
    const eventId = EVENTS[2] ?? "";
    const ticket = (await client.reserve({ eventId, userId: "shard-watcher" })).ticket;
    const stream = client.watchStatus({ eventId, userId: "shard-watcher", ticket })[Symbol.asyncIterator]();
    await stream.next();
    const owner = await ownerOf(eventId);
    const nodes = cluster.nodes.map((node) => new Redis(Number(node.split(":")[1]), "127.0.0.1"));
    try {
      // The owner's shard: the owner and its replica. The rest of the cluster is every other node.
      const shard = new Set<number>([owner]);
      // Each replica's master: a replica hears its own shard's changes (of other events, if any run meanwhile).
      const masterOf = new Map<number, number>();
      for (const node of nodes) {
        const role = (await node.call("ROLE")) as unknown[];
        if (role[0] === "slave") masterOf.set(node.options.port ?? 0, Number(role[2]));
        if (role[0] === "slave" && Number(role[2]) === owner) shard.add(node.options.port ?? 0);
      }
      const others = nodes.filter((node) => !shard.has(node.options.port ?? 0));
      expect(shard.size).toBe(2);
      expect(others).toHaveLength(4);
      const received = async (node: Redis): Promise<number> => {
        const info = String(await node.call("CLUSTER", "INFO"));
        const count = (type: string): number => Number(new RegExp(`^cluster_stats_messages_${type}_received:(\\d+)`, "m").exec(info)?.[1] ?? 0);
        return count("publish") + count("publishshard");
      };
      const counts = (): Promise<number[]> => Promise.all(nodes.map(received));
      const CHANGES = 20;
      const ownerNode = nodes.find((node) => node.options.port === owner);
      const spublishCalls = async (node: Redis | undefined): Promise<number> => Number(/^cmdstat_spublish:calls=(\d+)/m.exec(String(await node?.info("commandstats")))?.[1] ?? 0);
      // SPUBLISH calls per node (commands called by scripts are counted too).
      const spublishes = async (): Promise<Map<number, number>> => new Map(await Promise.all(nodes.map(async (node) => [node.options.port ?? 0, await spublishCalls(node)] as const)));
      const spublishedBefore = await spublishes();
      let before = await counts();
      for (let i = 0; i < CHANGES; i++) await client.reserve({ eventId, userId: `shard-${i}` });
      await new Promise((r) => setTimeout(r, 500));
      let after = await counts();
      const spublishedAfter = await spublishes();
      const sharded = nodes.map((node, i) => ({ port: node.options.port ?? 0, got: (after[i] ?? 0) - (before[i] ?? 0) }));
      const spublishedBy = (port: number | undefined): number => (port === undefined ? 0 : (spublishedAfter.get(port) ?? 0) - (spublishedBefore.get(port) ?? 0));
      const spublished = spublishedBy(owner);
      // What PUBLISH would have done: the same number of messages on the same channel, sent by the owner.
      before = await counts();
      for (let i = 0; i < CHANGES; i++) await ownerNode?.publish(svc.store.channel(eventId), "{}");
      await new Promise((r) => setTimeout(r, 500));
      after = await counts();
      const broadcast = nodes.map((node, i) => ({ port: node.options.port ?? 0, got: (after[i] ?? 0) - (before[i] ?? 0) }));
      console.log(`cluster bus messages received per node for ${CHANGES} changes of one event: with SPUBLISH ${JSON.stringify(sharded)}; with PUBLISH ${JSON.stringify(broadcast)} (owner ${owner}; SPUBLISH calls per node meanwhile ${JSON.stringify([...spublishedAfter].map(([port, calls]) => [port, calls - (spublishedBefore.get(port) ?? 0)]))})`);
      // No node outside the owner's shard hears of the event's changes (its replica may: it can serve
      // sharded subscribers too). A replica elsewhere hears only what its own master published meanwhile
      // (another event's change, e.g. a sweeper's), a master elsewhere nothing.
      // (At most: one published just before the window opened may have arrived before it.)
      for (const { port, got } of sharded) if (!shard.has(port)) expect(got, `node ${port}`).toBeLessThanOrEqual(spublishedBy(masterOf.get(port)));
      // They did go out, by SPUBLISH.
      expect(spublished).toBeGreaterThanOrEqual(CHANGES);
      for (const { port, got } of broadcast) if (port !== owner) expect(got, `node ${port}`).toBe(CHANGES);
    } finally {
      for (const node of nodes) node.disconnect();
      await stream.return?.();
    }
  });

  // It once failed under the full suite's load: the replica was still in its first
  // full sync when its master died (no data to serve, too stale to take over).
  // Hence replicasInSync() before the kill.
  it("writes the scripts called together to each master in one write", async () => {
    const masters = (svc.redis as unknown as Cluster).nodes("master").filter((node) => node.status === "ready");
    expect(masters.length).toBe(3);
    const calls = [1, 2, 3, 4, 5].map((i) => svc.store.reserve("default", `batch-${i}`));
    // Every master's socket holds what this turn of the loop wrote; nothing has gone out yet.
    for (const node of masters) expect(node.stream.writableCorked).toBe(1);
    expect(masters.reduce((bytes, node) => bytes + node.stream.writableLength, 0)).toBeGreaterThan(5 * 200);
    await new Promise((resolve) => setImmediate(resolve));
    for (const node of masters) expect(node.stream.writableCorked).toBe(0);
    expect(await Promise.all(calls)).toHaveLength(5);
  });

  it("a hung master (SIGSTOP) fails its events' calls UNAVAILABLE within the command timeout, and they are served again once it resumes", async () => {
    const own = await startTestService("", { clusterNodes: cluster.nodes, commandTimeoutMs: 400, capacity: 2 });
    try {
      const ownClient = createClient(TicketQueueService, createGrpcTransport({ baseUrl: own.baseUrl }));
      const eventId = "hung-master";
      await ownClient.createEvent({ eventId, capacity: 2 }, admin);
      const port = await ownerOf(eventId, own);
      // Shorter than the cluster's node timeout (2 s): no failover, the master only hangs.
      cluster.kill(port, "SIGSTOP");
      let took: number;
      let code: Code | undefined;
      try {
        const started = Date.now();
        code = await ownClient.getStatus({ eventId, userId: "x" }).then(() => undefined, (err: unknown) => ConnectError.from(err).code);
        took = Date.now() - started;
      } finally {
        cluster.kill(port, "SIGCONT");
      }
      expect(code).toBe(Code.Unavailable);
      expect(took).toBeLessThan(1_500);
      let served = false;
      for (let i = 0; i < 50 && !served; i++) served = await ownClient.getStatus({ eventId, userId: "x" }).then(() => true, () => false);
      expect(served).toBe(true);
    } finally {
      await own.close();
    }
  });

  it("keeps serving after a master is killed and its replica takes over, and its watchers keep hearing changes", async () => {
    const eventId = EVENTS[0] ?? "";
    // A watcher behind "d" (seats b and c, d waiting, from the first test).
    const ticket = (await client.reserve({ eventId, userId: "failover-watcher" })).ticket;
    const watch = () => client.watchStatus({ eventId, userId: "failover-watcher", ticket })[Symbol.asyncIterator]();
    let stream = watch();
    expect((await stream.next()).value).toMatchObject({ status: ReservationStatus.QUEUED, position: 2 });
    const r = await killMasterUnderLoad(cluster, svc, client, eventId);
    // Reported, not asserted: with asynchronous replication the last writes before
    // the kill may not have reached the replica.
    console.log(`cluster failover (fast): ${r.summary}`);
    // What a watcher sees next, reconnecting as clients do when the stream ends UNAVAILABLE (Redis moved under it).
    const until = async (wanted: (m: { change: StatusChange; status: ReservationStatus; position: number }) => boolean): Promise<boolean> => {
      const deadline = Date.now() + 15_000;
      while (Date.now() < deadline) {
        try {
          const next = await Promise.race([stream.next(), new Promise<"silent">((resolve) => setTimeout(() => resolve("silent"), deadline - Date.now()))]);
          if (next === "silent") return false;
          if (next.done) stream = watch();
          else if (wanted(next.value)) return true;
        } catch (err: unknown) {
          expect(ConnectError.from(err).code).toBe(Code.Unavailable);
          await new Promise((resolve) => setTimeout(resolve, 200));
          stream = watch();
        }
      }
      return false;
    };
    await client.adminCancel({ eventId, userId: "d" }, admin);
    expect(await until((m) => m.position === 1)).toBe(true);
    // The stream is on the new master's sharded subscription now: a promotion is pushed to it.
    await client.adminCancel({ eventId, userId: "b" }, admin);
    expect(await until((m) => m.change === StatusChange.PROMOTED && m.status === ReservationStatus.RESERVED)).toBe(true);
    await stream.return?.();
  }, 60_000);
});

describe("on a Redis Cluster with DURABILITY=strict", () => {
  let strictCluster: TestCluster;
  let strict: TestService;
  let strictClient: ReturnType<typeof createClient<typeof TicketQueueService>>;
  beforeAll(async () => {
    // Redis 7.0 has no WAITAOF: strict needs every node to fsync each write.
    strictCluster = await startTestCluster(["--appendonly", "yes", "--appendfsync", "always"]);
    strict = await startTestService("", { clusterNodes: strictCluster.nodes, commandTimeoutMs: 2000, capacity: 2, durability: "strict" });
    strictClient = createClient(TicketQueueService, createGrpcTransport({ baseUrl: strict.baseUrl }));
  }, 60_000);
  afterAll(async () => {
    await strict?.close();
    await strictCluster?.dispose();
  });

  it("loses no acknowledged reservation when a master is killed under load", async () => {
    await strictClient.createEvent({ eventId: "strict-1", capacity: 100 }, admin);
    await strict.redis.config("RESETSTAT").catch(() => undefined);
    for (let i = 0; i < 20; i++) await strictClient.reserve({ eventId: "strict-1", userId: `warm-${i}` });
    // Each write was WAITed for on its master's connection (every master has a replica).
    let waits = 0;
    for (const node of (strict.redis as unknown as Cluster).nodes("master")) {
      waits += Number(/^cmdstat_wait:calls=(\d+)/m.exec(await node.info("commandstats"))?.[1] ?? 0);
    }
    expect(waits).toBeGreaterThanOrEqual(20);

    const r = await killMasterUnderLoad(strictCluster, strict, strictClient, "strict-1");
    console.log(`cluster failover (strict): ${r.summary}`);
    expect(r.lost).toEqual([]);
  }, 60_000);
});

/**
 * Four loops of Reserve on one event; its master is killed -9 once they run; waits
 * until calls succeed again on the promoted replica. Counts the acknowledged users
 * Redis no longer has.
 */
async function killMasterUnderLoad(
  on: TestCluster,
  service: TestService,
  rpc: ReturnType<typeof createClient<typeof TicketQueueService>>,
  eventId: string,
): Promise<{ lost: string[]; summary: string }> {
  const [, seatsKey = "", waitingKey = ""] = eventKeys(service.prefix, eventId);
  const port = await ownerOf(eventId, service);
  // A replica still in its first sync has nothing to take over with.
  await on.replicasInSync();
  const acked: string[] = [];
  let stop = false;
  let n = 0;
  let failed = 0;
  const unexpected: string[] = [];
  const loops = Array.from({ length: 4 }, async () => {
    while (!stop) {
      const userId = `f-${n++}`;
      try {
        await rpc.reserve({ eventId, userId });
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
  on.kill(port);
  const killedAt = Date.now();
  // Wait for the replica to take over: calls succeed again.
  while (acked.length < ackedBeforeKill + 50 && Date.now() - killedAt < 20_000) await new Promise((r) => setTimeout(r, 100));
  const recoveredInMs = Date.now() - killedAt;
  stop = true;
  await Promise.all(loops);
  // Only refusals: never an internal error, never "no such event" from an empty replica.
  expect(unexpected).toEqual([]);
  expect(acked.length).toBeGreaterThanOrEqual(ackedBeforeKill + 50);
  const present = new Set([...(await service.redis.hkeys(seatsKey)), ...(await service.redis.zrange(waitingKey, 0, -1))]);
  const lost = acked.filter((u) => !present.has(u));
  return {
    lost,
    summary:
      `served again ${recoveredInMs} ms after kill -9 of the master; ${failed} calls refused (UNAVAILABLE) meanwhile;` +
      ` ${lost.length} of ${acked.length} acknowledged reservations lost`,
  };
}
