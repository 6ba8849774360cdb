import { setMaxListeners } from "node:events";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-node";
import { beforeAll, describe, expect, it } from "vitest";
import { StatusChange, TicketQueueService, type WatchStatusResponse } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { TEST_ADMIN_TOKEN, useTestService } from "./helpers/service.js";
import { until } from "./helpers/wait.js";

// Announcements: the operator's message reaches every watcher live and every poller.
const env = useTestService();
const admin = { headers: { "x-token": TEST_ADMIN_TOKEN } };
let client: ReturnType<typeof createClient<typeof TicketQueueService>>;
beforeAll(() => {
  client = createClient(TicketQueueService, createGrpcWebTransport({ baseUrl: env.svc.baseUrl, httpVersion: "1.1" }));
});

describe("Announce", () => {
  it("reaches every open stream at once and every GetEvent; clears; admins only; one short line", async () => {
    await client.createEvent({ eventId: "notice", capacity: 1 }, admin);
    const users = ["a", "b", "c", "d"];
    const tickets = new Map<string, string>();
    for (const userId of users) tickets.set(userId, (await client.reserve({ eventId: "notice", userId })).ticket);
    const abort = new AbortController();
    setMaxListeners(0, abort.signal); // one controller ends many calls: not a leak
    const seen = new Map<string, WatchStatusResponse[]>();
    const streams = users.map(async (userId) => {
      const got: WatchStatusResponse[] = [];
      seen.set(userId, got);
      try {
        for await (const m of client.watchStatus({ eventId: "notice", userId, ticket: tickets.get(userId) }, { signal: abort.signal })) got.push(m);
      } catch {
        // aborted at the end
      }
    });
    await until(() => [...seen.values()].every((g) => g.length === 1));

    const r = await client.announce({ eventId: "notice", messageKo: "매진되었습니다", messageEn: "Sold out" }, admin);
    expect(r.event?.announcement).toMatchObject({ messageKo: "매진되었습니다", messageEn: "Sold out" });
    expect(await until(() => [...seen.values()].every((g) => g.some((m) => m.change === StatusChange.ANNOUNCEMENT)))).toBe(true);
    for (const got of seen.values()) expect(got.at(-1)?.announcement).toMatchObject({ messageKo: "매진되었습니다", messageEn: "Sold out" });
    expect((await client.getEvent({ eventId: "notice" })).event?.announcement?.messageEn).toBe("Sold out");

    // Cleared: the streams hear that too, and GetEvent has none.
    await client.announce({ eventId: "notice", messageKo: "", messageEn: "" }, admin);
    expect(await until(() => [...seen.values()].every((g) => g.at(-1)?.change === StatusChange.ANNOUNCEMENT && g.at(-1)?.announcement === undefined))).toBe(true);
    expect((await client.getEvent({ eventId: "notice" })).event?.announcement).toBeUndefined();
    abort.abort();
    await Promise.all(streams);

    const code = async (p: Promise<unknown>): Promise<Code | undefined> => p.then(() => undefined, (err: unknown) => ConnectError.from(err).code);
    expect(await code(client.announce({ eventId: "notice", messageEn: "hi" }))).toBe(Code.Unauthenticated);
    expect(await code(client.announce({ eventId: "notice", messageEn: "x".repeat(281) }, admin))).toBe(Code.InvalidArgument);
    expect(await code(client.announce({ eventId: "notice", messageKo: "두 줄\n공지" }, admin))).toBe(Code.InvalidArgument);
    expect(await code(client.announce({ eventId: "nope", messageEn: "hi" }, admin))).toBe(Code.NotFound);
    // 280 characters of Korean (840 bytes) is fine.
    expect((await client.announce({ eventId: "notice", messageKo: "가".repeat(280) }, admin)).event?.announcement?.messageKo).toHaveLength(280);
  });
});
