import { describe, expect, it } from "vitest";
import { rawRequest } from "./helpers/raw-http.js";
import { useTestService } from "./helpers/service.js";

const env = useTestService({ corsOrigins: ["https://ktx.example"] });

const call = (method: string, path: string, headers: Record<string, string>, body?: string) => rawRequest(env.svc.port, method, path, headers, body);

describe("CORS allow-list", () => {
  it("answers a gRPC-web preflight from an allowed origin", async () => {
    const r = await call("OPTIONS", "/ticketqueue.v1.TicketQueueService/Reserve", {
      origin: "https://ktx.example",
      "access-control-request-method": "POST",
      "access-control-request-headers": "content-type,x-grpc-web,x-user-agent",
    });
    expect(r.status).toBe(204);
    expect(r.headers["access-control-allow-origin"]).toBe("https://ktx.example");
    expect(String(r.headers["access-control-allow-headers"])).toMatch(/X-Grpc-Web/i);
    expect(String(r.headers["access-control-allow-headers"])).toMatch(/x-token/i);
  });

  it("keeps Vary: Origin on the web app's files beside their own Vary (a cache keeps an answer per origin)", async () => {
    const varies = (headers: Record<string, string | string[] | undefined>): string[] => String(headers["vary"]).toLowerCase().split(/\s*,\s*/).sort();
    const page = await call("GET", "/", { origin: "https://ktx.example", "accept-encoding": "gzip" });
    expect(page.status).toBe(200);
    expect(page.headers["access-control-allow-origin"]).toBe("https://ktx.example");
    expect(varies(page.headers)).toEqual(["accept-encoding", "origin"]);
    const again = await call("GET", "/", { origin: "https://ktx.example", "if-none-match": String(page.headers["etag"]) });
    expect(again.status).toBe(304);
    expect(varies(again.headers)).toEqual(["accept-encoding", "origin"]);
    // Asked for with no Origin (no CORS headers): it still varies by origin, or a cache would give it to an allowed one.
    const plain = await call("GET", "/", { "accept-encoding": "gzip" });
    expect(plain.headers["access-control-allow-origin"]).toBeUndefined();
    expect(varies(plain.headers)).toEqual(["accept-encoding", "origin"]);
  });

  it("lets the browser read gRPC-web and REST answers, with grpc-status exposed", async () => {
    const grpcWeb = await call(
      "POST",
      "/ticketqueue.v1.TicketQueueService/Health",
      { origin: "https://ktx.example", "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
      "\u0000\u0000\u0000\u0000\u0000",
    );
    expect(grpcWeb.status).toBe(200);
    expect(grpcWeb.headers["access-control-allow-origin"]).toBe("https://ktx.example");
    expect(String(grpcWeb.headers["access-control-expose-headers"])).toMatch(/Grpc-Status/i);
    const rest = await call("POST", "/reserve", { origin: "https://ktx.example", "content-type": "application/json" }, "{}");
    expect(rest.status).toBe(200);
    expect(rest.headers["access-control-allow-origin"]).toBe("https://ktx.example");
  });

  it("gives an origin that is not on the list no CORS headers", async () => {
    const preflight = await call("OPTIONS", "/reserve", { origin: "https://evil.example", "access-control-request-method": "POST" });
    expect(preflight.headers["access-control-allow-origin"]).toBeUndefined();
    const r = await call("POST", "/reserve", { origin: "https://evil.example", "content-type": "application/json" }, "{}");
    expect(r.headers["access-control-allow-origin"]).toBeUndefined();
  });
});
