import { readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { TicketQueueService } from "../gen/ticketqueue/v1/ticket_queue_pb.js";

// ghz cannot run here; its configurations must at least name real RPCs and real files.
describe("bench/ghz configurations", () => {
  const files = readdirSync("bench/ghz").filter((f) => f.endsWith(".json"));
  it.each(files)("%s calls an RPC of the service with the proto files it needs", (file) => {
    const config = JSON.parse(readFileSync(`bench/ghz/${file}`, "utf8")) as { proto: string; "import-paths": string[]; call: string };
    const [service, method] = [config.call.slice(0, config.call.lastIndexOf(".")), config.call.slice(config.call.lastIndexOf(".") + 1)];
    expect(service).toBe(TicketQueueService.typeName);
    expect(TicketQueueService.methods.map((m) => m.name)).toContain(method);
    expect(readFileSync(config.proto, "utf8")).toContain(`rpc ${method}(`);
    for (const dir of config["import-paths"]) expect(readdirSync(dir).length).toBeGreaterThan(0);
  });
});
