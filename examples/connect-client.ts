// A typed Connect client over each transport the service speaks.
// Run: npm run build && node dist/examples/connect-client.js [base URL]
import { createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { ReservationStatus, TicketQueueService } from "../gen/ticketqueue/v1/ticket_queue_pb.js";

const baseUrl = process.argv[2] ?? process.env["TICKET_QUEUE_URL"] ?? "http://localhost:8000";

const transports: Record<string, Transport> = {
  grpc: createGrpcTransport({ baseUrl }),
  "grpc-web": createGrpcWebTransport({ baseUrl, httpVersion: "1.1" }),
  connect: createConnectTransport({ baseUrl, httpVersion: "1.1" }),
};

for (const [name, transport] of Object.entries(transports)) {
  const client = createClient(TicketQueueService, transport);
  const reserved = await client.reserve({ userId: `connect-example-${name}` });
  const status = await client.getStatus({ userId: reserved.userId });
  console.log(`${name}: ${reserved.userId} is ${ReservationStatus[status.status]}${status.position ? ` at position ${status.position}` : ""}`);
}
