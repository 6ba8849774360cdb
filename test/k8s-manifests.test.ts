import { readdirSync, readFileSync } from "node:fs";
import { credentials, loadPackageDefinition, type ServiceClientConstructor } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler";
import { Service } from "kubernetes-models/v1/Service";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { TicketQueueService } from "../gen/ticketqueue/v1/ticket_queue_pb.js";
import { LIVENESS_SERVICE } from "../src/rpc/health-service.js";
import { ON_CLUSTER, useTestService } from "./helpers/service.js";

// deploy/k8s: every manifest valid against the Kubernetes API's own schemas (the
// OpenAPI definitions kubernetes-models ships), and the probes pointing at health
// service names the running service answers: readiness follows Redis, liveness
// does not (a Redis failover must make pods unready, never restart them all).
type Manifest = { kind: string; metadata: { name: string }; spec: Record<string, never> } & Record<string, unknown>;
const manifests: Manifest[] = readdirSync("deploy/k8s")
  .filter((f) => f.endsWith(".yaml"))
  .flatMap((f) => parseAllDocuments(readFileSync(`deploy/k8s/${f}`, "utf8")).map((d) => d.toJS() as Manifest));
const MODELS = { Deployment, Service, PodDisruptionBudget, HorizontalPodAutoscaler } as const;
const byKind = (kind: keyof typeof MODELS): Manifest => {
  const found = manifests.find((m) => m.kind === kind);
  if (!found) throw new Error(`no ${kind} in deploy/k8s`);
  return found;
};

interface Container {
  ports: { name: string; containerPort: number }[];
  env: { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string }; resourceFieldRef?: { resource: string } } }[];
  readinessProbe: { grpc: { port: number; service: string } };
  livenessProbe: { grpc: { port: number; service: string } };
  securityContext: { readOnlyRootFilesystem: boolean; allowPrivilegeEscalation: boolean };
  resources: { limits: { cpu: string } };
}

describe("the Kubernetes manifests", () => {
  it("are valid objects of the Kubernetes API", () => {
    expect(manifests.map((m) => m.kind).sort()).toEqual(["Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service"]);
    for (const m of manifests) {
      const Model = MODELS[m.kind as keyof typeof MODELS];
      expect(() => new Model(m as never).validate(), `${m.kind} ${m.metadata.name}`).not.toThrow();
    }
    // The validation does check: a wrong type is refused.
    const broken = structuredClone(byKind("Deployment")) as unknown as { spec: { replicas: unknown } };
    broken.spec.replicas = "two";
    expect(() => new Deployment(broken as never).validate()).toThrow();
  });

  it("run non-root on a read-only filesystem, one worker per CPU, secrets by reference, probes on the real health names", () => {
    const deployment = byKind("Deployment") as unknown as { spec: { template: { metadata: { labels: Record<string, string> }; spec: { terminationGracePeriodSeconds: number; securityContext: { runAsNonRoot: boolean }; containers: Container[] } } } };
    const pod = deployment.spec.template.spec;
    const [container] = pod.containers;
    if (!container) throw new Error("no container");
    expect(pod.securityContext.runAsNonRoot).toBe(true);
    expect(container.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
    expect(container.env.find((e) => e.name === "WORKERS")?.valueFrom?.resourceFieldRef?.resource).toBe("limits.cpu");
    for (const secret of ["ADMIN_TOKEN", "TICKET_KEY"]) expect(container.env.find((e) => e.name === secret)?.valueFrom?.secretKeyRef?.key).toBe(secret);
    // The drain lets in-flight calls finish within REQUEST_TIMEOUT_SECONDS (30 by default).
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(30);
    const port = container.ports.find((p) => p.name === "http")?.containerPort;
    expect(container.readinessProbe.grpc).toEqual({ port, service: TicketQueueService.typeName });
    expect(container.livenessProbe.grpc).toEqual({ port, service: LIVENESS_SERVICE });
    // The Service, the budget and the autoscaler select these pods.
    const labels = deployment.spec.template.metadata.labels;
    const service = byKind("Service") as unknown as { spec: { selector: Record<string, string>; ports: { targetPort: string }[] } };
    expect(labels).toMatchObject(service.spec.selector);
    expect(service.spec.ports.map((p) => p.targetPort)).toEqual(["http"]);
    expect(labels).toMatchObject((byKind("PodDisruptionBudget") as unknown as { spec: { selector: { matchLabels: Record<string, string> } } }).spec.selector.matchLabels);
    expect((byKind("HorizontalPodAutoscaler") as unknown as { spec: { scaleTargetRef: { name: string } } }).spec.scaleTargetRef.name).toBe(byKind("Deployment").metadata.name);
  });
});

describe("the probes against a running service (grpc-js, as the kubelet's gRPC probe calls it)", () => {
  const env = useTestService();
  const definition = loadSync("health/v1/health.proto", { includeDirs: ["node_modules/grpc-health-check/proto"], enums: String });
  const { grpc } = loadPackageDefinition(definition) as unknown as { grpc: { health: { v1: { Health: ServiceClientConstructor } } } };
  const check = (service: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const client = new grpc.health.v1.Health(env.svc.address, credentials.createInsecure()) as unknown as {
        Check(req: object, options: object, cb: (err: Error | null, res: { status: string }) => void): void;
        close(): void;
      };
      client.Check({ service }, { deadline: Date.now() + 3000 }, (err, res) => {
        client.close();
        if (err) reject(err);
        else resolve(res.status);
      });
    });

  it.skipIf(ON_CLUSTER)("readiness follows Redis; liveness stays SERVING while Redis does not answer", async () => {
    expect(await check(TicketQueueService.typeName)).toBe("SERVING");
    expect(await check(LIVENESS_SERVICE)).toBe("SERVING");
    env.redis.pause();
    try {
      expect(await check(TicketQueueService.typeName)).toBe("NOT_SERVING");
      expect(await check(LIVENESS_SERVICE)).toBe("SERVING");
    } finally {
      env.redis.resume();
    }
    expect(await check(TicketQueueService.typeName)).toBe("SERVING");
  });
});
