import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { describe, expect, it } from "vitest";
import { TicketQueueService } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { TEST_ADMIN_TOKEN, useTestService } from "./helpers/service.js";

// The Python client generated into gen/python, run by Debian's python3 with its
// grpcio: Reserve, GetStatus, and WatchStatus until the promotion.
const env = useTestService();
const admin = { headers: { "x-token": TEST_ADMIN_TOKEN } };

describe("the generated Python client", () => {
  it("reserves, reads its status and follows its place live until it is seated", async () => {
    const client = createClient(TicketQueueService, createGrpcTransport({ baseUrl: env.svc.baseUrl }));
    await client.createEvent({ eventId: "py", capacity: 1 }, admin);
    await client.reserve({ eventId: "py", userId: "ahead" });
    const python = spawn("/usr/bin/python3", ["clients/python/watch_place.py", env.svc.address, "py", "snake"], { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    python.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const steps: Record<string, unknown>[] = [];
    const lines = createInterface({ input: python.stdout });
    const exited = new Promise<number | null>((resolve) => python.on("close", resolve));
    for await (const line of lines) {
      const step = JSON.parse(line) as Record<string, unknown>;
      steps.push(step);
      // Watching: the one ahead leaves, and the Python client sees its turn come.
      if (step["step"] === "watch" && step["change"] === "STATUS_CHANGE_INITIAL") await client.adminCancel({ eventId: "py", userId: "ahead" }, admin);
    }
    expect(await exited, stderr).toBe(0);
    expect(steps[0]).toMatchObject({ step: "reserve", status: "RESERVATION_STATUS_QUEUED", position: 1 });
    expect(String(steps[0]?.["ticket"])).toMatch(/^ey/);
    expect(steps[1]).toMatchObject({ step: "status", status: "RESERVATION_STATUS_QUEUED", position: 1 });
    expect(steps.slice(2).map((s) => s["change"])).toEqual(["STATUS_CHANGE_INITIAL", "STATUS_CHANGE_PROMOTED"]);
  });
});
