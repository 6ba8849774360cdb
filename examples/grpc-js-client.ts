// A @grpc/grpc-js client built from the generated descriptors (no .proto loading).
// Run: npm run build && node dist/examples/grpc-js-client.js [host:port] [admin token]
import { Metadata } from "@grpc/grpc-js";
import { ReservationStatus, TicketQueueService } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { createGrpcJsClient } from "../clients/grpc-js-client.js";

const address = process.argv[2] ?? "localhost:8000";
const adminToken = process.argv[3] ?? process.env["ADMIN_TOKEN"];
const client = createGrpcJsClient(TicketQueueService, address);

const reserved = await client.reserve({ userId: "grpc-js-example" });
console.log(`reserve: ${reserved.userId} is ${ReservationStatus[reserved.status]} (position ${reserved.position})`);

const health = await client.health({}, { deadline: new Date(Date.now() + 2000) });
console.log(`health: ${health.status}, redis ${health.redisLatencyMs} ms`);

if (adminToken) {
  const metadata = new Metadata();
  metadata.set("x-token", adminToken);
  const processed = await client.processQueue({}, { metadata });
  console.log(`process_queue: promoted ${processed.promotedCount}`);
}
client.close();
