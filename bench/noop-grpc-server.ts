// The load generator's own floor: an HTTP/2 server that answers every call with an
// empty gRPC message and grpc-status 0 at once, no Redis, no handler. What the
// generator measures against it, on the same cores, is latency it adds itself.
import http2 from "node:http2";

const EMPTY_MESSAGE = Buffer.alloc(5);
const server = http2.createServer();
server.on("stream", (stream) => {
  stream.resume();
  stream.once("end", () => {
    stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
    stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
    stream.end(EMPTY_MESSAGE);
  });
});
server.listen(Number(process.env["PORT"] ?? 0), process.env["HOST"] ?? "127.0.0.1");
process.on("SIGTERM", () => server.close(() => process.exit(0)));
