import { credentials, loadPackageDefinition, Metadata, type ServiceClientConstructor, type ServiceError } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { describe, expect, it } from "vitest";
import { TEST_ADMIN_TOKEN, useTestService } from "./helpers/service.js";

// Another gRPC stack that knows nothing of our generated code: grpc-js with
// @grpc/proto-loader reading proto/ (google/api from the google-proto-files package).

const env = useTestService({ capacity: 1 });

type Callback = (err: ServiceError | null, res: Record<string, unknown>) => void;
type DynamicClient = Record<string, (req: object, md: Metadata, cb: Callback) => void> & { close(): void };

function call(client: DynamicClient, method: string, req: object, md = new Metadata()): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const fn = client[method];
    if (!fn) throw new Error(`no method ${method}`);
    fn.call(client, req, md, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

describe("a client generated at run time from proto/", () => {
  it("reserves, queues, looks up and is refused without the admin token", async () => {
    const definition = loadSync("ticketqueue/v1/ticket_queue.proto", {
      includeDirs: ["proto", "node_modules/google-proto-files"],
      keepCase: true,
      enums: String,
      defaults: true,
    });
    const pkg = loadPackageDefinition(definition) as unknown as { ticketqueue: { v1: { TicketQueueService: ServiceClientConstructor } } };
    const Client = pkg.ticketqueue.v1.TicketQueueService;
    const client = new Client(env.svc.address, credentials.createInsecure()) as unknown as DynamicClient;
    try {
      expect(await call(client, "Reserve", { user_id: "p1" })).toMatchObject({ user_id: "p1", status: "RESERVATION_STATUS_RESERVED", position: 0 });
      expect(await call(client, "Reserve", { user_id: "p2" })).toMatchObject({ status: "RESERVATION_STATUS_QUEUED", position: 1 });
      expect(await call(client, "GetStatus", { user_id: "p2" })).toMatchObject({ status: "RESERVATION_STATUS_QUEUED", position: 1 });
      await expect(call(client, "Reset", {})).rejects.toMatchObject({ code: 16 });
      const md = new Metadata();
      md.set("x-token", TEST_ADMIN_TOKEN);
      expect(await call(client, "Reset", {}, md)).toMatchObject({ cleared_reserved: 1, cleared_waiting: 1 });
    } finally {
      client.close();
    }
  });
});
