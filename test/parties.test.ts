import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { beforeAll, describe, expect, it } from "vitest";
import { ReservationStatus, TicketQueueService } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { TEST_ADMIN_TOKEN, useTestService } from "./helpers/service.js";

// Parties (a family travelling together) through the service, as an outside
// client sees them: seats counted by party size, strict order, clear refusals.
const env = useTestService();
const admin = { headers: { "x-token": TEST_ADMIN_TOKEN } };
let client: ReturnType<typeof createClient<typeof TicketQueueService>>;
beforeAll(() => {
  client = createClient(TicketQueueService, createGrpcTransport({ baseUrl: env.svc.baseUrl }));
});

async function rest(method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(env.svc.baseUrl + path, { method, headers: { "content-type": "application/json", "x-token": TEST_ADMIN_TOKEN }, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

describe("parties", () => {
  it("take their seats at once, in strict order, counted as seats everywhere", async () => {
    const created = await rest("POST", "/v1/events", { event_id: "family", capacity: 4, max_party_size: 3, hold_seconds: 300 });
    expect(created.json["event"]).toMatchObject({ max_party_size: 3 });
    expect((await rest("POST", "/v1/events/family/reserve", { user_id: "kims", party_size: 3 })).json).toMatchObject({ status: "RESERVATION_STATUS_RESERVED", party_size: 3 });
    // One seat is free, but the head party needs two: it waits, and the single traveller behind it does not pass it.
    const parks = await rest("POST", "/v1/events/family/reserve", { user_id: "parks", party_size: 2 });
    expect(parks.json).toMatchObject({ status: "RESERVATION_STATUS_QUEUED", position: 1, party_size: 2 });
    expect((await rest("POST", "/v1/events/family/reserve", { user_id: "lee" })).json).toMatchObject({ status: "RESERVATION_STATUS_QUEUED", position: 2, party_size: 1 });
    expect((await client.processQueue({ eventId: "family" }, admin)).promotedCount).toBe(0);
    let e = (await client.getEvent({ eventId: "family" })).event;
    expect(e?.counts).toMatchObject({ reserved: 3, held: 3, waiting: 2 });

    // The big party leaves: both waiting parties fit, in order.
    expect((await client.adminCancel({ eventId: "family", userId: "kims" }, admin)).promotedUserIds).toEqual(["parks", "lee"]);
    e = (await client.getEvent({ eventId: "family" })).event;
    expect(e?.counts).toMatchObject({ reserved: 3, held: 3, waiting: 0 });
    expect(await client.getStatus({ eventId: "family", userId: "parks" })).toMatchObject({ status: ReservationStatus.RESERVED, partySize: 2 });
    // Confirming a party's hold releases its whole hold.
    await client.confirm({ eventId: "family", userId: "parks", ticket: String(parks.json["ticket"]) });
    expect((await client.getEvent({ eventId: "family" })).event?.counts).toMatchObject({ reserved: 3, held: 1 });
    const holders = await client.listSeatHolders({ eventId: "family" }, admin);
    expect(Object.fromEntries(holders.seatHolders.map((h) => [h.userId, h.seats]))).toEqual({ parks: 2, lee: 1 });
  });

  it("refuses a party larger than the event allows, and settings that could never seat one", async () => {
    await rest("POST", "/v1/events", { event_id: "small", capacity: 2, max_party_size: 2 });
    const big = await rest("POST", "/v1/events/small/reserve", { user_id: "x", party_size: 3 });
    expect(big.status).toBe(400);
    expect(String(big.json["message"])).toContain("parties of at most 2");
    expect((await rest("POST", "/v1/events", { event_id: "odd", capacity: 2, max_party_size: 3 })).status).toBe(400);
    const lowered = await rest("PATCH", "/v1/events/small", { capacity: 1 });
    expect(lowered.status).toBe(400);
    expect(String(lowered.json["message"])).toContain("max_party_size must be 1 to the capacity");
    // A capacity below a waiting party would stop the line behind it for good: refused.
    await rest("POST", "/v1/events", { event_id: "lowered", capacity: 4, max_party_size: 3 });
    await rest("POST", "/v1/events/lowered/reserve", { user_id: "a", party_size: 3 });
    await rest("POST", "/v1/events/lowered/reserve", { user_id: "b", party_size: 3 });
    await rest("POST", "/v1/events/lowered/reserve", { user_id: "c" });
    const blocking = await rest("PATCH", "/v1/events/lowered", { max_party_size: 1, capacity: 2 });
    expect(blocking.status).toBe(400);
    expect(String(blocking.json["message"])).toContain("a party of 3 waits");
    // The default is one seat per Reserve, as before.
    expect((await rest("POST", "/v1/events", { event_id: "solo", capacity: 5 })).json["event"]).toMatchObject({ max_party_size: 1 });
    expect((await rest("POST", "/v1/events/solo/reserve", { user_id: "y", party_size: 2 })).status).toBe(400);
  });
});
