import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { describe, expect, it } from "vitest";
import { ReservationStatus, TicketQueueService } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { useTestService } from "./helpers/service.js";

const CAPACITY = 500;
const USERS = 5000;

const env = useTestService({ capacity: CAPACITY, commandTimeoutMs: 10_000 });

describe("5,000 simultaneous Reserve calls over gRPC", () => {
  it("reserve exactly `capacity` users and queue the rest at positions 1..N, and repeating changes nothing", async () => {
    const client = createClient(TicketQueueService, createGrpcTransport({ baseUrl: env.svc.baseUrl }));
    const ids = Array.from({ length: USERS }, (_, i) => `user-${i}`);
    const first = await Promise.all(ids.map((userId) => client.reserve({ userId })));

    const reserved = first.filter((r) => r.status === ReservationStatus.RESERVED);
    const queued = first.filter((r) => r.status === ReservationStatus.QUEUED);
    expect(reserved).toHaveLength(CAPACITY);
    expect(queued).toHaveLength(USERS - CAPACITY);
    expect(reserved.every((r) => r.position === 0)).toBe(true);
    const positions = queued.map((r) => r.position).sort((a, b) => a - b);
    expect(positions).toEqual(Array.from({ length: USERS - CAPACITY }, (_, i) => i + 1));
    expect(new Set(first.map((r) => r.userId)).size).toBe(USERS);

    // Redis agrees, and its FIFO order is the order of the positions handed out.
    expect(await env.svc.redis.hlen(`${env.svc.prefix}:{default}:seats`)).toBe(CAPACITY);
    const waiting = await env.svc.redis.zrange(`${env.svc.prefix}:{default}:waiting`, 0, -1);
    expect(waiting).toEqual([...queued].sort((a, b) => a.position - b.position).map((r) => r.userId));

    const again = await Promise.all(ids.map((userId) => client.reserve({ userId })));
    for (const [i, r] of again.entries()) {
      const before = first[i];
      expect(r.status).toBe(before?.status);
      expect(r.position).toBe(before?.position);
      expect(r.alreadyReserved || r.alreadyInQueue).toBe(true);
    }
    expect(await env.svc.redis.hlen(`${env.svc.prefix}:{default}:seats`)).toBe(CAPACITY);
    expect(await env.svc.redis.zcard(`${env.svc.prefix}:{default}:waiting`)).toBe(USERS - CAPACITY);
  });
});
