import { readFileSync } from "node:fs";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { describe, expect, it } from "vitest";
import { TicketQueueService } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { scrape } from "./helpers/metrics.js";
import { useTestService } from "./helpers/service.js";

// deploy/grafana/ticket-queue.json: every metric its queries read, and every label
// value they select on, exists on a running service's /metrics.
const env = useTestService({ capacity: 1 });

interface Dashboard {
  panels: { title: string; datasource: { uid: string }; targets: { expr: string; datasource: { uid: string } }[] }[];
}

describe("the Grafana dashboard", () => {
  it("queries only metrics and label values the service exposes", async () => {
    const client = createClient(TicketQueueService, createGrpcTransport({ baseUrl: env.svc.baseUrl }));
    await client.reserve({ userId: "a" });
    await client.reserve({ userId: "b" });
    await client.reserve({ userId: "bad\n" }).catch(() => undefined);
    const families = await scrape(env.svc.baseUrl);
    const text = await (await fetch(`${env.svc.baseUrl}/metrics`)).text();

    const dashboard = JSON.parse(readFileSync("deploy/grafana/ticket-queue.json", "utf8")) as Dashboard;
    const exprs = dashboard.panels.flatMap((p) => {
      expect(p.datasource.uid, p.title).toBe("${datasource}");
      expect(p.targets.length, p.title).toBeGreaterThan(0);
      return p.targets.map((t) => t.expr);
    });
    const used = new Set<string>();
    for (const expr of exprs) {
      for (const [, name = "", selector = ""] of expr.matchAll(/\b((?:ticketqueue|grpc_server)_[a-z_]+)(\{[^}]*\})?/g)) {
        const family = name.replace(/_(bucket|sum|count)$/, "");
        used.add(family);
        expect(families.map((f) => f.name), `${family} in: ${expr}`).toContain(family);
        // Each label="value" selected on is a value some sample carries.
        for (const [, label, value] of selector.matchAll(/(\w+)="([^"]*)"/g)) {
          expect(text, `${family}{${label}="${value}"} in: ${expr}`).toMatch(new RegExp(`^${name}\\{[^}]*${label}="${value}"`, "m"));
        }
      }
    }
    expect([...used].sort()).toEqual([
      "grpc_server_handled_total",
      "grpc_server_handling_seconds",
      "grpc_server_started_total",
      "ticketqueue_event_users",
      "ticketqueue_open_streams",
      "ticketqueue_redis_ping_seconds",
    ]);
  });
});
