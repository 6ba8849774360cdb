import { readFileSync } from "node:fs";
import SwaggerParser from "@apidevtools/swagger-parser";
import { getOption } from "@bufbuild/protobuf";
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { beforeAll, describe, expect, it } from "vitest";
import { http } from "../gen/google/api/annotations_pb.js";
import { TicketQueueService } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { TEST_ADMIN_TOKEN, useTestService } from "./helpers/service.js";

// gen/openapi/openapi.json (buf generate, scripts/protoc-gen-openapi.mjs): a valid
// OpenAPI 3.1 document with every REST route of the proto, served at /openapi.json,
// and what the running gateway answers validates against it, operation by operation.
interface Operation {
  operationId: string;
  security?: unknown[];
  responses: Record<string, { content?: Record<string, unknown> }>;
}
type Document = { paths: Record<string, Record<string, Operation>>; components: Record<string, unknown> };
const document = JSON.parse(readFileSync("gen/openapi/openapi.json", "utf8")) as Document;
const operations = Object.entries(document.paths).flatMap(([path, verbs]) => Object.entries(verbs).map(([verb, op]) => ({ path, verb, op })));

const env = useTestService();

describe("the OpenAPI document", () => {
  it("is valid OpenAPI 3.1 (swagger-parser)", async () => {
    await expect(SwaggerParser.validate(structuredClone(document) as never)).resolves.toBeDefined();
  });

  it("has every route the gateway serves (the proto's google.api.http rules), and no other; admin routes want a credential", () => {
    const routes = TicketQueueService.methods.flatMap((method) => {
      const rule = getOption(method, http);
      return [rule, ...rule.additionalBindings].filter((b) => b.pattern.case !== undefined).map((b) => `${String(b.pattern.case)} ${String(b.pattern.value)}`);
    });
    expect(operations.map((o) => `${o.verb} ${o.path}`).sort()).toEqual(routes.sort());
    const reset = operations.find((o) => o.path === "/admin/reset")?.op;
    expect(reset?.security).toEqual([{ adminToken: [] }, { adminJwt: [] }]);
    expect(operations.find((o) => o.path === "/reserve")?.op.security).toBeUndefined();
  });

  it("is served at /openapi.json", async () => {
    const res = await fetch(`${env.svc.baseUrl}/openapi.json`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(await res.json()).toEqual(document);
  });
});

describe("the running gateway against the document", () => {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats.default(ajv);
  for (const format of ["int32", "int64", "uint64"]) ajv.addFormat(format, true);
  ajv.addSchema({ ...document, $id: "openapi" });
  let ticket = "";
  let leaving = "";
  beforeAll(async () => {
    const call = (path: string, body: unknown) => fetch(env.svc.baseUrl + path, { method: "POST", headers: { "content-type": "application/json", "x-token": TEST_ADMIN_TOKEN }, body: JSON.stringify(body) });
    await call("/v1/events", { event_id: "oa", capacity: 2 });
    await call("/v1/events", { event_id: "oa-pow", capacity: 2, pow_difficulty: 1000 });
    ticket = String(((await (await call("/v1/events/oa/reserve", { user_id: "u1" })).json()) as { ticket: string }).ticket);
    await call("/v1/events/oa/reserve", { user_id: "u2" });
    leaving = String(((await (await call("/v1/events/oa/reserve", { user_id: "leaving" })).json()) as { ticket: string }).ticket);
  });

  // One plausible call per operation: its path with parameters filled, and a body.
  const requests: Record<string, { path: string; body?: unknown }> = {
    Reserve: { path: "/reserve", body: {} },
    Reserve_2: { path: "/v1/events/oa/reserve", body: { user_id: "u3" } },
    GetStatus: { path: "/status/nobody" },
    GetStatus_2: { path: "/v1/events/oa/status/u1" },
    Cancel: { path: "/v1/events/oa/cancel", body: { user_id: "leaving" } },
    WatchStatus: { path: "/v1/events/oa/watch?user_id=u1" },
    Confirm: { path: "/v1/events/oa/confirm", body: { user_id: "u1" } },
    ProcessQueue: { path: "/process_queue", body: {} },
    ProcessQueue_2: { path: "/v1/events/oa/process_queue", body: {} },
    Reset: { path: "/admin/reset", body: {} },
    Reset_2: { path: "/v1/events/oa-pow/reset", body: { confirm: "oa-pow" } },
    AdminCancel: { path: "/v1/events/oa/admin/cancel", body: { user_id: "u2" } },
    ListSeatHolders: { path: "/v1/events/oa/seats?page_size=10" },
    CreateEvent: { path: "/v1/events", body: { event_id: "oa-new", capacity: 3, opens_at: "2099-01-01T00:00:00Z" } },
    ListEvents: { path: "/v1/events" },
    UpdateEvent: { path: "/v1/events/oa", body: { capacity: 5 } },
    GetEvent: { path: "/v1/events/oa-new" },
    GetChallenge: { path: "/v1/events/oa-pow/challenge" },
    Announce: { path: "/v1/events/oa/announcement", body: { message_en: "Sold out soon" } },
    ListDrawValues: { path: "/v1/events/oa/draw/values" },
    GetTicketKeys: { path: "/.well-known/jwks.json" },
    Health: { path: "/health" },
  };

  it("answers every documented operation with a documented status and a body its schema accepts", async () => {
    expect(Object.keys(requests).sort()).toEqual(operations.map((o) => o.op.operationId).sort());
    for (const { path, verb, op } of operations) {
      const request = requests[op.operationId];
      if (!request) throw new Error(`no request for ${op.operationId}`);
      const headers: Record<string, string> = { "content-type": "application/json", ...(op.security ? { "x-token": TEST_ADMIN_TOKEN } : {}) };
      const withTicket = op.operationId === "Confirm" ? { ticket } : op.operationId === "Cancel" ? { ticket: leaving } : {};
      const body = request.body === undefined ? undefined : JSON.stringify({ ...(request.body as object), ...withTicket });
      const abort = new AbortController();
      const url = env.svc.baseUrl + (op.operationId === "WatchStatus" ? `${request.path}&ticket=${ticket}` : request.path);
      const res = await fetch(url, { method: verb.toUpperCase(), headers, body, signal: abort.signal });
      const documented = op.responses[String(res.status)];
      expect(documented, `${op.operationId} ${verb} ${path}: HTTP ${res.status}`).toBeDefined();
      if (op.operationId === "WatchStatus") {
        expect(res.headers.get("content-type")).toContain("text/event-stream");
        abort.abort();
        continue;
      }
      // Each of these is a call that succeeds: a 200 whose body is the documented message.
      expect(res.status, `${op.operationId}: ${await res.clone().text()}`).toBe(200);
      const pointer = `openapi#/paths/${path.replace(/~/g, "~0").replace(/\//g, "~1")}/${verb}/responses/200/content/application~1json/schema`;
      const validate = ajv.getSchema(pointer);
      if (!validate) throw new Error(`no schema at ${pointer}`);
      const json: unknown = await res.json();
      expect(validate(json), `${op.operationId}: ${JSON.stringify(validate.errors)} in ${JSON.stringify(json)}`).toBe(true);
    }
    // An error's body is the documented Error.
    const refused = await fetch(`${env.svc.baseUrl}/admin/reset`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect(refused.status).toBe(401);
    const validateError = ajv.getSchema("openapi#/components/schemas/Error");
    expect(validateError?.(await refused.json())).toBe(true);
  });
});
