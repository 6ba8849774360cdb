import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { describe, expect, it } from "vitest";
import { ReservationStatus, TicketQueueService } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { eventKeys } from "../src/queue/keys.js";
import { createDurabilityGate } from "../src/redis/durability.js";
import { createRedisClient } from "../src/redis/redis-client.js";
import { startTestRedis, type TestRedis } from "./helpers/redis-server.js";
import { startTestService, type TestService } from "./helpers/service.js";

const CAPACITY = 50;

interface Ack {
  userId: string;
  status: ReservationStatus;
  position: number;
}

/**
 * Reserves new users from `clients` concurrent loops until stopped; records every
 * reservation the service acknowledged. Redis is killed -9 in the middle and
 * restarted from its AOF.
 */
async function crashUnderLoad(redis: TestRedis, svc: TestService): Promise<Ack[]> {
  const client = createClient(TicketQueueService, createGrpcTransport({ baseUrl: svc.baseUrl }));
  const acked: Ack[] = [];
  let stop = false;
  let n = 0;
  const loops = Array.from({ length: 16 }, async () => {
    while (!stop) {
      const userId = `u-${n++}`;
      try {
        const r = await client.reserve({ userId });
        acked.push({ userId, status: r.status, position: r.position });
      } catch (err: unknown) {
        if (ConnectError.from(err).code !== Code.Unavailable) throw err;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  });
  await new Promise((r) => setTimeout(r, 700));
  await redis.kill();
  await new Promise((r) => setTimeout(r, 200));
  await redis.start();
  for (let i = 0; i < 100; i++) {
    if (await svc.store.ping().then(() => true, () => false)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  await new Promise((r) => setTimeout(r, 300));
  stop = true;
  await Promise.all(loops);
  return acked;
}

async function lost(svc: TestService, acked: Ack[]): Promise<{ missing: Ack[]; outOfOrder: number; seats: number }> {
  const [, seatsKey = "", waitingKey = ""] = eventKeys(svc.prefix, "default");
  const seats = new Set(await svc.redis.hkeys(seatsKey));
  const waiting = await svc.redis.zrange(waitingKey, 0, -1);
  const rank = new Map(waiting.map((u, i) => [u, i]));
  const missing = acked.filter((a) => !seats.has(a.userId) && !rank.has(a.userId));
  // Queued acknowledgements, in the order of the positions they were given, must keep that order in Redis.
  const queued = acked.filter((a) => a.status === ReservationStatus.QUEUED && rank.has(a.userId)).sort((a, b) => a.position - b.position);
  let outOfOrder = 0;
  for (let i = 1; i < queued.length; i++) if ((rank.get(queued[i]?.userId ?? "") ?? 0) < (rank.get(queued[i - 1]?.userId ?? "") ?? 0)) outOfOrder++;
  return { missing, outOfOrder, seats: seats.size };
}

describe("DURABILITY", () => {
  it("strict refuses a server that would not fsync every write", async () => {
    const redis = await startTestRedis(["--appendonly", "yes", "--appendfsync", "everysec"]);
    const client = createRedisClient({ url: redis.url, commandTimeoutMs: 1000 });
    try {
      await client.connect();
      await expect(createDurabilityGate(client, "strict", 1000)).rejects.toThrow(/appendfsync always/);
    } finally {
      client.disconnect();
      await redis.dispose();
    }
  });

  it("strict: after kill -9 of Redis under load and a restart from the AOF, every acknowledged reservation is there, in order", async () => {
    const redis = await startTestRedis(["--appendonly", "yes", "--appendfsync", "always"]);
    const svc = await startTestService(redis.url, { capacity: CAPACITY, durability: "strict", commandTimeoutMs: 1000 });
    try {
      const acked = await crashUnderLoad(redis, svc);
      const { missing, outOfOrder, seats } = await lost(svc, acked);
      console.log(`strict: ${acked.length} reservations acknowledged around a kill -9; ${missing.length} missing after the restart, ${outOfOrder} out of order`);
      expect(acked.length).toBeGreaterThan(100);
      expect(missing).toEqual([]);
      expect(outOfOrder).toBe(0);
      expect(seats).toBeLessThanOrEqual(CAPACITY);
    } finally {
      await svc.close();
      await redis.dispose();
    }
  });

  it("fast (appendfsync everysec): the loss is measured and reported, not asserted", async () => {
    const redis = await startTestRedis(["--appendonly", "yes", "--appendfsync", "everysec"]);
    const svc = await startTestService(redis.url, { capacity: CAPACITY, durability: "fast", commandTimeoutMs: 1000 });
    try {
      const acked = await crashUnderLoad(redis, svc);
      const { missing } = await lost(svc, acked);
      console.log(`fast: ${acked.length} reservations acknowledged around a kill -9; ${missing.length} lost (${((missing.length / Math.max(1, acked.length)) * 100).toFixed(1)}%)`);
      expect(acked.length).toBeGreaterThan(100);
    } finally {
      await svc.close();
      await redis.dispose();
    }
  });
});

describe("DURABILITY=strict with a replica", () => {
  it("acknowledges a write only once a replica has it: killing the primary loses nothing acknowledged", async () => {
    const primary = await startTestRedis(["--appendonly", "yes", "--appendfsync", "always"]);
    const replica = await startTestRedis(["--replicaof", "127.0.0.1", String(primary.port), "--repl-diskless-sync-delay", "0"]);
    const replicaClient = createRedisClient({ url: replica.url, commandTimeoutMs: 2000 });
    await replicaClient.connect();
    for (let i = 0; i < 100; i++) {
      if (/master_link_status:up/.test(await replicaClient.info("replication"))) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const svc = await startTestService(primary.url, { capacity: CAPACITY, durability: "strict", commandTimeoutMs: 2000 });
    try {
      // The gate reads the replica count at most once a second: let it see the replica.
      await new Promise((r) => setTimeout(r, 1100));
      const client = createClient(TicketQueueService, createGrpcTransport({ baseUrl: svc.baseUrl }));
      const acked = (await Promise.all(Array.from({ length: 300 }, (_, i) => client.reserve({ userId: `r-${i}` })))).map((r) => r.userId);
      // WAIT was sent, once per batch of concurrent writes rather than once per write.
      const waits = Number(/^cmdstat_wait:calls=(\d+)/m.exec(await svc.redis.info("commandstats"))?.[1] ?? 0);
      expect(waits).toBeGreaterThan(0);
      expect(waits).toBeLessThan(300);
      await primary.kill();
      const [, seatsKey = "", waitingKey = ""] = eventKeys(svc.prefix, "default");
      const onReplica = new Set([...(await replicaClient.hkeys(seatsKey)), ...(await replicaClient.zrange(waitingKey, 0, -1))]);
      const missing = acked.filter((u) => !onReplica.has(u));
      console.log(`strict with a replica: ${acked.length} acknowledged with ${waits} WAITs, ${missing.length} missing on the replica after kill -9 of the primary`);
      expect(missing).toEqual([]);
    } finally {
      replicaClient.disconnect();
      await svc.close();
      await replica.dispose();
      await primary.dispose();
    }
  });
});
